//! Classifies embedded digit images with the int8 QDQ model in flash and prints each output's
//! f32 bit patterns over semihosting, so the host test can check they equal the host runtime's.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;
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

/// Bytes of stack used so far: cortex-m-rt paints the stack with 0xCCCCCCCC at reset
/// (`paint-stack`); the lowest overwritten word marks the high-water mark.
fn stack_high_water() -> usize {
    extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    // SAFETY: the linker script defines both symbols; we only take their addresses and read
    // words of our own stack region, which is always mapped.
    unsafe {
        let top = core::ptr::addr_of!(_stack_start) as usize;
        let mut p = core::ptr::addr_of!(_stack_end) as usize;
        while p < top && core::ptr::read_volatile(p as *const u32) == 0xCCCC_CCCC {
            p += 4;
        }
        top - p
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
    hprintln!("stack high-water mark: {} bytes", stack_high_water());
    Ok(())
}
