//! The alert policy: hysteresis so one pedestrian approaching a zone gives one alert, not one per
//! frame, and a new alert only after the danger has clearly passed.

/// Per track and zone: where the debounce stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoneAlertState {
    streak: u8,
    quiet: u8,
    alerted: bool,
}

/// When to raise and re-arm an alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertPolicy {
    /// Consecutive predictions of entry needed before alerting (1 = alert at once).
    pub confirm: u8,
    /// Consecutive predictions without entry (while outside) before the zone re-arms.
    pub rearm: u8,
    /// Only entries predicted within this many seconds count.
    pub horizon_s: f32,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            confirm: 2,
            rearm: 5,
            horizon_s: super::PRED_STEPS as f32 * super::STEP_S,
        }
    }
}

impl AlertPolicy {
    /// Feeds one prediction; returns `true` when an alert should be raised now.
    /// `entry_s` is the predicted time to entry (already limited to the horizon), `inside`
    /// whether the pedestrian is in the zone now (no alert then, and none until re-armed).
    pub fn update(&self, s: &mut ZoneAlertState, entry_s: Option<f32>, inside: bool) -> bool {
        if inside {
            *s = ZoneAlertState {
                streak: 0,
                quiet: 0,
                alerted: true,
            };
            return false;
        }
        match entry_s {
            Some(_) => {
                s.quiet = 0;
                s.streak = s.streak.saturating_add(1);
                if !s.alerted && s.streak >= self.confirm.max(1) {
                    s.alerted = true;
                    return true;
                }
            }
            None => {
                s.streak = 0;
                s.quiet = s.quiet.saturating_add(1);
                if s.quiet >= self.rearm.max(1) {
                    s.alerted = false;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_approach_gives_one_alert_after_confirmation() {
        let p = AlertPolicy::default();
        let mut s = ZoneAlertState::default();
        let fired: heapless::Vec<bool, 8> =
            [Some(3.0), Some(2.6), Some(2.2), None, Some(1.4), Some(1.0)]
                .iter()
                .map(|e| p.update(&mut s, *e, false))
                .collect();
        assert_eq!(&fired[..], &[false, true, false, false, false, false]);
    }

    #[test]
    fn rearms_only_after_quiet_period_and_not_inside() {
        let p = AlertPolicy {
            confirm: 1,
            rearm: 2,
            ..Default::default()
        };
        let mut s = ZoneAlertState::default();
        assert!(p.update(&mut s, Some(2.0), false));
        assert!(!p.update(&mut s, None, true)); // walked in
        assert!(!p.update(&mut s, Some(1.0), false)); // just out, still suppressed
        assert!(!p.update(&mut s, None, false));
        assert!(!p.update(&mut s, None, false)); // re-armed now
        assert!(p.update(&mut s, Some(1.0), false));
    }
}
