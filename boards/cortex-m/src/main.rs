//! Classifies embedded digit images with the int8 QDQ model in flash and prints each output's
//! f32 bit patterns over semihosting, so the host test can check they equal the host runtime's.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
// Text output only (the host parses it); the `defmt` feature is for the hazard firmware.
#[cfg(not(feature = "defmt"))]
use panic_semihosting as _;
// With defmt the panic handler is the library's (a defmt frame, then exit).
#[cfg(feature = "defmt")]
use sprig_cortex_m as _;
use sprig_runtime::{InterpreterWith, Model};

/// The model lives in flash and is read in place.
static MODEL: &[u8] = include_bytes!("../models/digits_int8.onnx");
/// 8 test images, 64 little-endian f32 each.
static SAMPLES: &[u8] = include_bytes!("../models/digits_samples.f32");

/// Fixed tables sized for small classifiers: 64 tensors, 32 nodes.
type Interp<'m, 'a> = InterpreterWith<'m, 'a, 64, 32>;

#[entry]
fn main() -> ! {
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
    let model = Model::parse(MODEL)?;
    let mut arena = [0u8; 2048];
    // Keep the interpreter inside the Result instead of moving it out with `?`: the tables are
    // ~15 KB, and a move would need a second copy on the stack.
    let mut planned = Interp::new(&model, &mut arena);
    let it = match planned.as_mut() {
        Ok(it) => it,
        Err(e) => return Err(e.clone()),
    };
    let report = it.arena_report();
    hprintln!(
        "arena {} bytes (persistent {}, working {}), {} steps",
        report.total,
        report.persistent,
        report.working,
        report.steps
    );
    let per = it.input_mut(0)?.len();
    for (i, img) in SAMPLES.chunks_exact(per).enumerate() {
        it.set_input(0, img)?;
        it.invoke()?;
        let out = it.output(0)?;
        hprintln!("out {}: {:02x?}", i, out.data);
    }
    hprintln!(
        "stack high-water mark: {} bytes",
        sprig_cortex_m::stack_high_water()
    );
    Ok(())
}
