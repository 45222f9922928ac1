//! `sprig-edge`: the on-device daemon for Jetson-class aarch64 Linux boards.
//!
//! - `classify MODEL SAMPLES.f32` runs an int8 classifier on raw f32 images and prints each
//!   output's bytes (the Cortex-M firmware's format, so tests compare boards with the host).
//! - `profile MODEL SAMPLES` prints the arena, per-inference and per-step times, the outputs
//!   and the peak resident memory (what `sprig profile --board jetson-qemu` reads).
//! - `--half` (with `classify` or `profile`) computes a float16 model's float16 part in half
//!   precision, on Xavier's FP16 arithmetic (`fmla .8h`) where the CPU has it
//!   ([`sprig_runtime::half_ops`]); the outputs are the same bits on every CPU.
//! - `hazard MODEL ZONES.toml DETECTIONS|-|udp:ADDR:PORT` runs the pedestrian hazard pipeline
//!   (64 tracks) on detection lines `TIME_S X Y` from a file, stdin or UDP datagrams (whole lines
//!   per datagram; an empty one ends the stream) and prints alerts as JSON lines, exactly the
//!   loop `sprig hazard run` runs on the host. `--alarm-gpio /dev/gpiochip0:17` drives a buzzer
//!   or LED (linux-embedded-hal's character-device pin): on while frames raise alerts.
//!   `--confirm N`, `--rearm N` and `--horizon S` set the alert policy, as for `sprig hazard run`
//!   (pick them with `sprig hazard eval --sweep`).

use embedded_hal::digital::OutputPin;
use sprig_runtime::hazard::{
    io::write_alert_json, stream, AlertPolicy, Decode, HazardPipeline, ModelPredictor, Point,
    TrackerConfig,
};
use sprig_runtime::{Interpreter, Model, PlanOptions};
use std::io::Write;
use std::process::ExitCode;

/// Detection lines from UDP datagrams (`udp:ADDR:PORT`): a datagram carries whole lines (one
/// frame or several); an empty datagram ends the stream, like end of file.
struct UdpLines {
    sock: std::net::UdpSocket,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl std::io::Read for UdpLines {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            if self.done {
                return Ok(0);
            }
            self.buf.resize(65_536, 0);
            let n = self.sock.recv(&mut self.buf)?;
            self.buf.truncate(n);
            self.pos = 0;
            if n == 0 {
                self.done = true;
            } else if self.buf.last() != Some(&b'\n') {
                // A datagram ends its last line.
                self.buf.push(b'\n');
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The alarm output (buzzer/LED): on while frames raise alerts. Any embedded-hal pin.
struct Alarm<P: OutputPin> {
    pin: P,
    on: bool,
    errors: u64,
}

impl<P: OutputPin> Alarm<P> {
    fn frame(&mut self, alerts: usize) {
        let on = alerts > 0;
        if on != self.on {
            let r = if on {
                self.pin.set_high()
            } else {
                self.pin.set_low()
            };
            // A failing pin must not stop the alerts on stdout: counted, reported at the end.
            match r {
                Ok(()) => self.on = on,
                Err(_) => self.errors += 1,
            }
        }
    }
}

/// No pin: `--alarm-gpio` not given.
struct NoPin;

impl embedded_hal::digital::ErrorType for NoPin {
    type Error = core::convert::Infallible;
}

impl OutputPin for NoPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// `CHIP:LINE` (e.g. `/dev/gpiochip0:17`) as an output line through the GPIO character device,
/// starting low.
fn gpio_pin(spec: &str) -> Result<linux_embedded_hal::CdevPin, String> {
    use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
    let (chip, line) = spec
        .rsplit_once(':')
        .and_then(|(c, l)| Some((c, l.parse::<u32>().ok()?)))
        .ok_or_else(|| {
            format!("--alarm-gpio {spec}: expected CHIP:LINE, e.g. /dev/gpiochip0:17")
        })?;
    let handle = Chip::new(chip)
        .and_then(|mut c| c.get_line(line))
        .and_then(|l| l.request(LineRequestFlags::OUTPUT, 0, "sprig-edge alarm"))
        .map_err(|e| format!("--alarm-gpio {spec}: {e}"))?;
    linux_embedded_hal::CdevPin::new(handle).map_err(|e| format!("--alarm-gpio {spec}: {e}"))
}

fn hazard(
    model_path: &str,
    zones_path: &str,
    detections: &str,
    alarm_gpio: Option<&str>,
    policy: AlertPolicy,
) -> Result<(), String> {
    match alarm_gpio {
        Some(spec) => hazard_with(model_path, zones_path, detections, gpio_pin(spec)?, policy),
        None => hazard_with(model_path, zones_path, detections, NoPin, policy),
    }
}

/// Takes `--confirm N`, `--rearm N` and `--horizon S` out of `args` into a policy (the
/// defaults for those not given), with the same bounds as `sprig hazard run`.
fn take_policy(args: &mut Vec<String>) -> Result<AlertPolicy, String> {
    let mut policy = AlertPolicy::default();
    let max_horizon = sprig_runtime::hazard::PRED_STEPS as f32 * sprig_runtime::hazard::STEP_S;
    while let Some(i) = args
        .iter()
        .position(|a| matches!(a.as_str(), "--confirm" | "--rearm" | "--horizon"))
    {
        let flag = args.remove(i);
        if i >= args.len() {
            return Err(format!("{flag} needs a value"));
        }
        let value = args.remove(i);
        let bad = || format!("{flag} {value}: expected a count 1-255");
        match flag.as_str() {
            "--confirm" => {
                policy.confirm = value.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?
            }
            "--rearm" => policy.rearm = value.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?,
            _ => {
                policy.horizon_s = value
                    .parse::<f32>()
                    .ok()
                    .filter(|&h| h > 0.0 && h <= max_horizon + 1e-4)
                    .ok_or_else(|| {
                        format!("--horizon {value}: expected seconds in (0, {max_horizon}]")
                    })?
            }
        }
    }
    Ok(policy)
}

fn hazard_with<P: OutputPin>(
    model_path: &str,
    zones_path: &str,
    detections: &str,
    pin: P,
    policy: AlertPolicy,
) -> Result<(), String> {
    let bytes = std::fs::read(model_path).map_err(|e| format!("{model_path}: {e}"))?;
    let text = std::fs::read_to_string(zones_path).map_err(|e| format!("{zones_path}: {e}"))?;
    let zones = sprig_runtime::hazard::zones_toml::parse(&text)
        .map_err(|e| format!("{zones_path}: {e}"))?;
    let model = Model::parse(&bytes).map_err(|e| format!("{model_path}: {e}"))?;
    let mut arena = vec![0u8; model.arena_bytes().map_err(|e| e.to_string())?];
    let mut it = Interpreter::new(&model, &mut arena).map_err(|e| e.to_string())?;
    let predictor = ModelPredictor::new(&mut it, Decode::of(&model)).map_err(|e| e.to_string())?;
    let mut p = HazardPipeline::<_, 64>::new(predictor, &zones, TrackerConfig::default(), policy)
        .map_err(|e| e.to_string())?;
    let input: Box<dyn std::io::BufRead> = if detections == "-" {
        Box::new(std::io::stdin().lock())
    } else if let Some(addr) = detections.strip_prefix("udp:") {
        let sock = std::net::UdpSocket::bind(addr).map_err(|e| format!("{detections}: {e}"))?;
        let local = sock.local_addr().map_err(|e| e.to_string())?;
        eprintln!("listening on udp {local}");
        Box::new(std::io::BufReader::new(UdpLines {
            sock,
            buf: Vec::new(),
            pos: 0,
            done: false,
        }))
    } else {
        let f = std::fs::File::open(detections).map_err(|e| format!("{detections}: {e}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out = std::io::stdout().lock();
    let mut line = String::new();
    let mut alarm = Alarm {
        pin,
        on: false,
        errors: 0,
    };
    let sum = stream::run_frames(
        &mut p,
        input,
        false,
        &|x, y| Point::new(x, y),
        |a| {
            line.clear();
            let _ = write_alert_json(&mut line, a, zones[a.zone].name());
            // Alerts go out as they happen; a closed stdout ends nothing but the printing.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        },
        |_, alerts| alarm.frame(alerts),
    )
    .map_err(|e| format!("{e:?}"))?;
    alarm.frame(0);
    if alarm.errors > 0 {
        eprintln!("alarm pin: {} writes failed", alarm.errors);
    }
    eprintln!(
        "{} frames, {} detections, {} alerts; skipped: {} malformed lines, {} non-finite detections, {} out-of-order frames, {} over the track table",
        sum.frames, sum.detections, sum.alerts, sum.malformed_lines, sum.non_finite,
        sum.out_of_order_frames, sum.table_full
    );
    Ok(())
}

fn run(model_path: &str, samples_path: &str, opts: PlanOptions) -> Result<(), String> {
    let bytes = std::fs::read(model_path).map_err(|e| format!("{model_path}: {e}"))?;
    let samples = std::fs::read(samples_path).map_err(|e| format!("{samples_path}: {e}"))?;
    let model = Model::parse(&bytes).map_err(|e| format!("{model_path}: {e}"))?;
    let mut arena = vec![0u8; model.arena_bytes_with(opts).map_err(|e| e.to_string())?];
    let mut it = Interpreter::new_with(&model, &mut arena, opts).map_err(|e| e.to_string())?;
    let report = it.arena_report();
    println!(
        "arena {} bytes (persistent {}, working {}), {} steps",
        report.total, report.persistent, report.working, report.steps
    );
    let per = it.input_mut(0).map_err(|e| e.to_string())?.len();
    if per == 0 || samples.len() % per != 0 {
        return Err(format!(
            "{samples_path}: {} bytes is not a whole number of {per}-byte inputs",
            samples.len()
        ));
    }
    for (i, img) in samples.chunks_exact(per).enumerate() {
        it.set_input(0, img).map_err(|e| e.to_string())?;
        it.invoke().map_err(|e| e.to_string())?;
        let out = it.output(0).map_err(|e| e.to_string())?;
        println!("out {}: {:02x?}", i, out.data);
    }
    Ok(())
}

/// Times each step of an inference (`sprig profile --board jetson-qemu` reads the lines).
struct StepClock {
    start: std::time::Instant,
    us: Vec<f64>,
}

impl sprig_runtime::StepObserver for StepClock {
    fn before(&mut self, _: usize, _: &str, _: &str) {
        self.start = std::time::Instant::now();
    }
    fn after(&mut self, _: usize) {
        self.us.push(self.start.elapsed().as_secs_f64() * 1e6);
    }
}

/// Peak resident memory of this process (Linux `VmHWM`), bytes.
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// `profile MODEL SAMPLES`: the arena, each inference's and (for the last) each step's time,
/// every output's bytes and the peak resident memory, one fact per line; then each inference
/// once more between instruction-count markers.
fn profile(model_path: &str, samples_path: &str, opts: PlanOptions) -> Result<(), String> {
    let bytes = std::fs::read(model_path).map_err(|e| format!("{model_path}: {e}"))?;
    let samples = std::fs::read(samples_path).map_err(|e| format!("{samples_path}: {e}"))?;
    let model = Model::parse(&bytes).map_err(|e| format!("{model_path}: {e}"))?;
    let mut arena = vec![0u8; model.arena_bytes_with(opts).map_err(|e| e.to_string())?];
    let mut it = Interpreter::new_with(&model, &mut arena, opts).map_err(|e| e.to_string())?;
    let report = it.arena_report();
    println!("kernels {}", sprig_runtime::kernels::kernel_set());
    if opts.half_arithmetic {
        println!("half arithmetic {}", sprig_runtime::half_ops::kernel_set());
    }
    println!(
        "arena {} bytes (persistent {}, working {}), {} steps",
        report.total, report.persistent, report.working, report.steps
    );
    let per = it.input_mut(0).map_err(|e| e.to_string())?.len();
    if per == 0 || samples.len() % per != 0 {
        return Err(format!(
            "{samples_path}: {} bytes is not a whole number of {per}-byte inputs",
            samples.len()
        ));
    }
    // One untimed inference first: the first run of any code pays one-off costs (page faults,
    // and under qemu-user the translation of every instruction).
    it.set_input(0, &samples[..per])
        .map_err(|e| e.to_string())?;
    it.invoke().map_err(|e| e.to_string())?;
    let last = samples.len() / per - 1;
    for (i, s) in samples.chunks_exact(per).enumerate() {
        // Timed as the daemon runs it: a plain `invoke`, no observer.
        it.set_input(0, s).map_err(|e| e.to_string())?;
        let t = std::time::Instant::now();
        it.invoke().map_err(|e| e.to_string())?;
        println!("inference {i}: us {:.1}", t.elapsed().as_secs_f64() * 1e6);
        if i == last {
            // Once more with a clock around each step.
            it.set_input(0, s).map_err(|e| e.to_string())?;
            let mut clock = StepClock {
                start: std::time::Instant::now(),
                us: Vec::new(),
            };
            it.invoke_with(&mut clock).map_err(|e| e.to_string())?;
            for (k, us) in clock.us.iter().enumerate() {
                println!("step {k}: us {us:.1}");
            }
        }
        let out = it.output(0).map_err(|e| e.to_string())?;
        println!("out {}: {:02x?}", i, out.data);
    }
    // For an instruction counter: each inference again, between two getpid system calls
    // (`sprig profile --board jetson-qemu` loads a QEMU plugin that prints the guest's
    // instruction count at every getpid; see boards/jetson/qemu/insn_markers.c).
    for s in samples.chunks_exact(per) {
        it.set_input(0, s).map_err(|e| e.to_string())?;
        let _ = std::process::id();
        it.invoke().map_err(|e| e.to_string())?;
        let _ = std::process::id();
    }
    println!("instruction markers {}", 2 * samples.len() / per);
    if let Some(b) = peak_rss() {
        println!("peak resident memory: {b} bytes");
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    let opts = PlanOptions {
        half_arithmetic: args.iter().any(|a| a == "--half"),
        ..Default::default()
    };
    let half_ok = matches!(
        args.get(1).map(String::as_str),
        Some("classify" | "profile")
    );
    if opts.half_arithmetic && !half_ok {
        eprintln!("error: --half goes with classify or profile");
        return ExitCode::from(2);
    }
    args.retain(|a| a != "--half");
    let policy = if args.get(1).map(String::as_str) == Some("hazard") {
        match take_policy(&mut args) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        AlertPolicy::default()
    };
    let r = match args.as_slice() {
        [_, cmd, model, samples] if cmd == "classify" => run(model, samples, opts),
        [_, cmd, model, samples] if cmd == "profile" => profile(model, samples, opts),
        [_, cmd, model, zones, det] if cmd == "hazard" => hazard(model, zones, det, None, policy),
        [_, cmd, model, zones, det, flag, pin] if cmd == "hazard" && flag == "--alarm-gpio" => {
            hazard(model, zones, det, Some(pin), policy)
        }
        _ => {
            eprintln!(
                "usage: sprig-edge classify MODEL.onnx SAMPLES.f32 [--half]\n       sprig-edge profile MODEL.onnx SAMPLES.bin [--half]\n       sprig-edge hazard MODEL.onnx ZONES.toml DETECTIONS|-|udp:ADDR:PORT [--alarm-gpio CHIP:LINE] [--confirm N] [--rearm N] [--horizon S]"
            );
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every level written; fails when told to.
    struct Recorder {
        levels: Vec<bool>,
        fail: bool,
    }

    impl embedded_hal::digital::ErrorType for Recorder {
        type Error = embedded_hal::digital::ErrorKind;
    }

    impl OutputPin for Recorder {
        fn set_low(&mut self) -> Result<(), Self::Error> {
            self.write(false)
        }
        fn set_high(&mut self) -> Result<(), Self::Error> {
            self.write(true)
        }
    }

    impl Recorder {
        fn write(&mut self, level: bool) -> Result<(), embedded_hal::digital::ErrorKind> {
            if self.fail {
                return Err(embedded_hal::digital::ErrorKind::Other);
            }
            self.levels.push(level);
            Ok(())
        }
    }

    #[test]
    fn the_alarm_is_on_while_frames_raise_alerts() {
        let mut a = Alarm {
            pin: Recorder {
                levels: Vec::new(),
                fail: false,
            },
            on: false,
            errors: 0,
        };
        for alerts in [0, 2, 1, 0, 0, 3, 0] {
            a.frame(alerts);
        }
        assert_eq!(a.pin.levels, [true, false, true, false]);
        let mut broken = Alarm {
            pin: Recorder {
                levels: Vec::new(),
                fail: true,
            },
            on: false,
            errors: 0,
        };
        broken.frame(1);
        broken.frame(1);
        assert_eq!(broken.errors, 2);
    }

    #[test]
    fn gpio_specs_are_checked() {
        let e = gpio_pin("17").err().unwrap();
        assert!(e.contains("expected CHIP:LINE"), "{e}");
        let e = gpio_pin("/dev/no-such-gpiochip:3").err().unwrap();
        assert!(e.contains("/dev/no-such-gpiochip:3"), "{e}");
    }
}
