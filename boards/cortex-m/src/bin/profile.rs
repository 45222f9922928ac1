//! Profiles any model on the board: `sprig profile MODEL.onnx --board cortex-m-qemu` builds this
//! firmware with the model, sample inputs and table sizes it chose (`SPRIG_PROFILE_*`, see
//! build.rs; the digits model by default), boots it and reads back what it prints over
//! semihosting: the arena plan, each step's and each inference's time, every output's bytes
//! (compared with the host's) and the stack high-water mark.
//!
//! Time is read from the DWT cycle counter on real boards and from SysTick as well: QEMU does not
//! model DWT (CYCCNT stays 0), but with `-icount` its SysTick advances with executed
//! instructions, which makes it an instruction counter there.
#![no_std]
#![no_main]

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
// Text output only (the host parses it); the `defmt` feature is for the hazard firmware.
#[cfg(not(feature = "defmt"))]
use panic_semihosting as _;
// With defmt the panic handler is the library's (a defmt frame, then exit).
#[cfg(feature = "defmt")]
use sprig_cortex_m as _;
use sprig_cortex_m::clock::{self, now};
#[cfg(not(feature = "frozen"))]
use sprig_runtime::Model;
use sprig_runtime::{InterpreterWith, StepObserver};

include!(concat!(env!("OUT_DIR"), "/profile_config.rs"));

/// The model lives in flash and is read in place.
static MODEL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/profile_model.onnx"));
/// The plan `sprig freeze` made for the model (feature `frozen`; empty otherwise).
#[cfg_attr(not(feature = "frozen"), allow(dead_code))]
static PLAN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/profile_plan.bin"));
/// Sample inputs, back to back in the model's input layout.
static SAMPLES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/profile_samples.bin"));

/// Tables sized by the host for this model.
type Interp<'m, 'a> = InterpreterWith<'m, 'a, MAX_TENSORS, MAX_NODES>;

/// The arena in .bss (RAM the linker accounts for), not on the stack.
struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);
// SAFETY: only `run` touches it, once, from the main thread; no interrupt handler does.
unsafe impl Sync for Arena {}
static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));

/// The interpreter's tables (sized for the model) in .bss too: built in place by
/// `InterpreterWith::new_in`, so the linker counts them and the stack stays small.
struct Slot(UnsafeCell<MaybeUninit<Interp<'static, 'static>>>);
// SAFETY: as for `Arena`.
unsafe impl Sync for Slot {}
static INTERP: Slot = Slot(UnsafeCell::new(MaybeUninit::uninit()));

#[exception]
fn SysTick() {
    clock::wrapped();
}

/// Per-step times of one inference.
struct StepTimer {
    start: (u64, u32),
    steps: heapless::Vec<(u64, u32), MAX_NODES>,
}

impl StepObserver for StepTimer {
    fn before(&mut self, _: usize, _: &str, _: &str) {
        self.start = now();
    }

    fn after(&mut self, _: usize) {
        let (t, c) = now();
        let _ = self
            .steps
            .push((t - self.start.0, c.wrapping_sub(self.start.1)));
    }
}

/// A fault ends the run with a message instead of QEMU's silent lockup loop (a stack that ran
/// into the statics below it would be the usual cause).
#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    hprintln!(
        "hard fault at pc {:#x} (a stack overflow into the statics?)",
        ef.pc()
    );
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[entry]
fn main() -> ! {
    let mut cp = cortex_m::Peripherals::take().unwrap();
    clock::start(&mut cp);
    let code = match run() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            hprintln!("error: {}", e);
            debug::EXIT_FAILURE
        }
    };
    debug::exit(code);
    loop {
        cortex_m::asm::wfi();
    }
}

fn run() -> Result<(), sprig_runtime::Error> {
    // SAFETY: see `Arena`; this is the only reference ever made.
    let arena = unsafe { &mut *ARENA.0.get() };
    // SAFETY: see `Slot`; this is the only reference ever made.
    let slot = unsafe { &mut *INTERP.0.get() };
    #[cfg(not(feature = "frozen"))]
    let it = Interp::new_in(slot, &Model::parse(MODEL)?, &mut arena[..])?;
    #[cfg(feature = "frozen")]
    let it = Interp::new_frozen_in(slot, MODEL, PLAN, &mut arena[..])?;
    let report = it.arena_report();
    hprintln!(
        "arena {} bytes (persistent {}, working {}), {} steps",
        report.total,
        report.persistent,
        report.working,
        report.steps
    );
    let per = it.input_mut(0)?.len();
    for (i, sample) in SAMPLES.chunks_exact(per).enumerate() {
        // Timed as an application runs it: a plain `invoke`, no observer.
        it.set_input(0, sample)?;
        let start = now();
        it.invoke()?;
        let end = now();
        hprintln!(
            "inference {}: ticks {} cycles {}",
            i,
            end.0 - start.0,
            end.1.wrapping_sub(start.1)
        );
        if i == 0 {
            // Once more with a timer around each step (which adds its own work to the total).
            it.set_input(0, sample)?;
            let mut timer = StepTimer {
                start: now(),
                steps: heapless::Vec::new(),
            };
            it.invoke_with(&mut timer)?;
            for (k, (t, c)) in timer.steps.iter().enumerate() {
                hprintln!("step {}: ticks {} cycles {}", k, t, c);
            }
        }
        let out = it.output(0)?;
        hprintln!("out {}: {:02x?}", i, out.data);
    }
    hprintln!(
        "stack high-water mark: {} bytes",
        sprig_cortex_m::stack_high_water()
    );
    Ok(())
}
