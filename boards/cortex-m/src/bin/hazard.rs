//! The pedestrian hazard pipeline on a Cortex-M4: 64-track tracker, the int8 trajectory model in
//! flash, the demo scene's zones, fed the demo scene's detection lines (also in flash), printing
//! alerts as the same JSON lines `sprig hazard run` prints on the host.
//!
//! With the `defmt` feature every line is a defmt frame instead of semihosting text: the alert
//! line keeps the JSON shape, with the numbers formatted by the host-side decoder.
//!
//! It also times every frame's `process` call in SysTick ticks ([`sprig_cortex_m::clock`]:
//! cycles on a board, 40 instructions each under QEMU's `-icount shift=0`), then runs the host
//! benchmark's scene (64 walkers pacing across the crossing, `compress/benches/hazard.rs`) for
//! the cost of a full track table.
#![no_std]
#![no_main]

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::debug;
#[cfg(not(feature = "defmt"))]
use panic_semihosting as _;
use sprig_cortex_m::clock;
// With defmt the panic handler is the library's (a defmt frame, then exit).
#[cfg(feature = "defmt")]
use sprig_cortex_m as _;
use sprig_cortex_m::say;
use sprig_runtime::hazard::io::parse_detection_line;
use sprig_runtime::hazard::{
    Alert, AlertPolicy, Decode, HazardPipeline, ModelPredictor, Point, TrackerConfig, Zone,
};
use sprig_runtime::{InterpreterWith, Model};

static MODEL: &[u8] = include_bytes!("../../models/traj_int8.onnx");
static DETECTIONS: &str = include_str!("../../../../scenes/demo/detections.txt");

/// The alarm output (buzzer or LED). Under QEMU there is no GPIO, so this one reports its level
/// changes over semihosting; on a board, any HAL's `OutputPin` takes its place.
struct AlarmPin {
    high: bool,
}

impl embedded_hal::digital::ErrorType for AlarmPin {
    type Error = core::convert::Infallible;
}

impl embedded_hal::digital::OutputPin for AlarmPin {
    fn set_high(&mut self) -> Result<(), Self::Error> {
        if !self.high {
            say!("alarm pin high");
        }
        self.high = true;
        Ok(())
    }
    fn set_low(&mut self) -> Result<(), Self::Error> {
        if self.high {
            say!("alarm pin low");
        }
        self.high = false;
        Ok(())
    }
}

/// Drives the alarm: high for a frame that raised alerts, low otherwise.
fn sound(pin: &mut impl embedded_hal::digital::OutputPin, alerts: usize) {
    // An alarm pin that cannot be driven must not stop the detection loop.
    let _ = if alerts > 0 {
        pin.set_high()
    } else {
        pin.set_low()
    };
}

/// Arena bytes for the trajectory model.
const ARENA: usize = 4800;

/// Tracks held at once.
const TRACKS: usize = 64;

type Interp = InterpreterWith<'static, 'static, 64, 32>;

/// The arena (the plan needs 4,703 bytes: Model::arena_bytes on the host) and the interpreter's
/// tables in .bss, where the linker counts them, rather than on the stack.
struct Statics {
    arena: UnsafeCell<[u8; ARENA]>,
    interp: UnsafeCell<MaybeUninit<Interp>>,
}
// SAFETY: only `run` touches them, once, from the main thread; no interrupt handler does.
unsafe impl Sync for Statics {}
static STATICS: Statics = Statics {
    arena: UnsafeCell::new([0; ARENA]),
    interp: UnsafeCell::new(MaybeUninit::uninit()),
};

#[exception]
fn SysTick() {
    clock::wrapped();
}

#[entry]
fn main() -> ! {
    let mut cp = cortex_m::Peripherals::take().unwrap();
    clock::start(&mut cp);
    let code = match run() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            say!("error: {}", e);
            debug::EXIT_FAILURE
        }
    };
    debug::exit(code);
    loop {
        cortex_m::asm::wfi();
    }
}

/// A fault is reported and ends the run (instead of the default silent loop).
#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    say!("hard fault at pc {:#x}", ef.pc());
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

/// One alert as the JSON line `sprig hazard run` prints (`write_alert_json`, formatted here).
#[cfg(not(feature = "defmt"))]
fn log_alert(a: &Alert, zone: &str) {
    let mut line: heapless::String<160> = heapless::String::new();
    let _ = sprig_runtime::hazard::io::write_alert_json(&mut line, a, zone);
    say!("{}", line.as_str());
}

/// One alert as a defmt frame of the same JSON shape: the device sends the raw numbers and the
/// host-side decoder formats them (shortest round-trip form rather than fixed decimals).
#[cfg(feature = "defmt")]
fn log_alert(a: &Alert, zone: &str) {
    say!(
        "{{\"t\":{=f64},\"track\":{=u32},\"zone\":\"{=str}\",\"time_to_entry_s\":{=f32},\"x\":{=f32},\"y\":{=f32}}}",
        a.time_s,
        a.track,
        zone,
        a.time_to_entry_s,
        a.position.x,
        a.position.y
    );
}

/// scenes/demo/zones.toml, as the firmware has no TOML reader (the host test checks that the
/// alerts equal the host's with that file).
fn zones() -> Result<[Zone; 2], sprig_runtime::hazard::ZoneError> {
    Ok([
        Zone::new(
            "crossing",
            &[[9.0, 3.0], [10.5, 3.0], [10.5, 9.0], [9.0, 9.0]],
        )?,
        Zone::new(
            "loading-bay",
            &[[2.0, 0.0], [5.0, 0.0], [5.0, 2.0], [2.0, 2.0]],
        )?,
    ])
}

fn run() -> Result<(), sprig_runtime::Error> {
    let zones = zones().map_err(|_| sprig_runtime::Error::BadIo { what: "zone" })?;
    let model = Model::parse(MODEL)?;
    // SAFETY: see `Statics`; `run` is entered once and these are the only references made.
    let (arena, slot) = unsafe { (&mut *STATICS.arena.get(), &mut *STATICS.interp.get()) };
    // The interpreter's tables are built in their static (the predictor only borrows them).
    let it = Interp::new_in(slot, &model, &mut arena[..])?;
    let predictor = ModelPredictor::new(it, Decode::of(&model))?;
    // Used in place inside its Result too, for the same reason.
    let mut pipeline = HazardPipeline::<_, TRACKS>::new(
        predictor,
        &zones,
        TrackerConfig::default(),
        AlertPolicy::default(),
    );
    let Ok(p) = pipeline.as_mut() else {
        return Err(sprig_runtime::Error::BadIo { what: "pipeline" });
    };
    say!(
        "hazard pipeline: {} tracks, arena {} bytes, pipeline {} bytes",
        TRACKS,
        ARENA,
        core::mem::size_of_val(p)
    );
    let mut frame: heapless::Vec<Point, 128> = heapless::Vec::new();
    let mut alerts: heapless::Vec<Alert, TRACKS> = heapless::Vec::new();
    let mut frame_t: Option<f64> = None;
    let (mut frames, mut raised) = (0u32, 0u32);
    let mut pin = AlarmPin { high: false };
    let mut cost = FrameCost::new();
    let mut flush =
        |p: &mut HazardPipeline<_, TRACKS>, t: f64, frame: &mut heapless::Vec<Point, 128>| {
            // Bad frames are skipped, as on the host.
            let start = clock::ticks();
            let done = p.process(t, frame, &mut alerts);
            cost.add(start);
            if done.is_ok() {
                frames += 1;
                sound(&mut pin, alerts.len());
                for a in &alerts {
                    log_alert(a, zones[a.zone].name());
                    raised += 1;
                }
            }
            frame.clear();
        };
    for line in DETECTIONS.lines() {
        let Ok(d) = parse_detection_line(line, false) else {
            continue;
        };
        if let Some(ft) = frame_t.filter(|&ft| ft != d.t) {
            flush(p, ft, &mut frame);
        }
        frame_t = Some(d.t);
        let _ = frame.push(Point::new(d.x, d.y));
    }
    if let Some(t) = frame_t {
        flush(p, t, &mut frame);
    }
    say!(
        "{} frames, {} alerts, {} predictions",
        frames,
        raised,
        p.predictions
    );
    cost.report("demo scene");
    walkers(p, frame_t.unwrap_or(0.0) + 60.0, &mut cost, &mut alerts);
    say!(
        "stack high-water mark: {} bytes",
        sprig_cortex_m::stack_high_water()
    );
    Ok(())
}

/// Frames [`FrameCost`] keeps (the demo scene has 296; later ones are not counted).
const TIMED_FRAMES: usize = 300;

/// Per-frame costs of `process` calls in SysTick ticks ([`clock::ticks`]), summarised as
/// median and maximum. SysTick counts core clock cycles on a board; under QEMU's
/// `-icount shift=0` it ticks once per 40 instructions.
struct FrameCost {
    ticks: heapless::Vec<u32, TIMED_FRAMES>,
}

impl FrameCost {
    fn new() -> Self {
        FrameCost {
            ticks: heapless::Vec::new(),
        }
    }

    /// Records one frame that started at `start` ([`clock::ticks`]).
    fn add(&mut self, start: u64) {
        let ticks = u32::try_from(clock::ticks() - start).unwrap_or(u32::MAX);
        let _ = self.ticks.push(ticks);
    }

    /// Prints the median and maximum per frame, then forgets the frames.
    fn report(&mut self, what: &str) {
        let n = self.ticks.len();
        if n > 0 {
            insertion_sort(&mut self.ticks);
            say!(
                "{} per frame: ticks median {} max {} ({} frames)",
                what,
                self.ticks[n / 2],
                self.ticks[n - 1],
                n
            );
        }
        self.ticks.clear();
    }
}

/// Sorts a few hundred values once per report, in a few bytes of code (core's sort adds KBs).
fn insertion_sort(v: &mut [u32]) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && v[j - 1] > v[j] {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Walkers in the load test: the track table's size.
const WALKERS: usize = TRACKS;
/// Frames of the load test; the first [`WARM_UP`] are not timed (tracks are born and gather
/// the 8 observed steps a prediction needs).
const LOAD_FRAMES: usize = 40;
const WARM_UP: usize = 10;

/// The host benchmark's scene (`compress/benches/hazard.rs`): 64 walkers pacing back and
/// forth across the crossing on lanes 0.35 m apart at 1.2 m/s, every 0.4 s, with up to 5 cm of
/// detection noise (a different noise sequence from the host's). Starts at `t0` seconds, after
/// the demo scene's tracks have died. Alerts are counted, not printed.
fn walkers<P: sprig_runtime::hazard::Predictor>(
    p: &mut HazardPipeline<P, TRACKS>,
    t0: f64,
    cost: &mut FrameCost,
    alerts: &mut heapless::Vec<Alert, TRACKS>,
) {
    let mut seed = 1u32;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed >> 8) as f32 / (1u32 << 24) as f32 * 0.1 - 0.05
    };
    let (mut raised, mut before) = (0usize, p.predictions);
    for k in 0..LOAD_FRAMES {
        let frame: heapless::Vec<Point, WALKERS> = (0..WALKERS)
            .map(|i| {
                let s = (0.48 * k as f32 + 3.0 * i as f32) % 32.0;
                let x = 2.0 + if s < 16.0 { s } else { 32.0 - s };
                let y = 0.5 + i as f32 * 0.35;
                let n = noise();
                Point::new(x + n, y + n)
            })
            .collect();
        if k == WARM_UP {
            cost.ticks.clear();
            before = p.predictions;
        }
        let start = clock::ticks();
        let done = p.process(t0 + 0.4 * k as f64, &frame, alerts);
        cost.add(start);
        if done.is_ok() {
            raised += alerts.len();
        }
    }
    let timed = (LOAD_FRAMES - WARM_UP) as u64;
    say!(
        "{} walkers: {} live tracks, {} predictions in the last {} frames, {} alerts",
        WALKERS,
        p.tracker().tracks().len(),
        p.predictions - before,
        timed,
        raised
    );
    cost.report("64 walkers");
}
