//! Zone files (feature `zones-toml`, std): `[[zone]] name = ".." polygon = [[x, y], ..]` in
//! world metres. One parser for the host CLI and the Jetson daemon; every error names the zone.

use super::geometry::Zone;
use super::MAX_ZONES;
use std::collections::HashSet;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneFile {
    zone: Vec<ZoneEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneEntry {
    name: String,
    polygon: Vec<[f32; 2]>,
}

/// Parses and validates a zones file; the error is one line naming the zone and the problem.
pub fn parse(text: &str) -> Result<Vec<Zone>, String> {
    let file: ZoneFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
    if file.zone.is_empty() {
        return Err("no [[zone]] entries".into());
    }
    if file.zone.len() > MAX_ZONES {
        return Err(format!(
            "{} zones; at most {MAX_ZONES} are supported",
            file.zone.len()
        ));
    }
    let mut seen = HashSet::new();
    let mut zones = Vec::new();
    for z in &file.zone {
        if !seen.insert(z.name.as_str()) {
            return Err(format!("zone '{}' is defined twice", z.name));
        }
        zones.push(Zone::new(&z.name, &z.polygon).map_err(|e| format!("zone '{}': {e}", z.name))?);
    }
    Ok(zones)
}
