//! What the firmware binaries share.
#![no_std]

/// Bytes of stack used so far: cortex-m-rt paints the stack with 0xCCCCCCCC at reset
/// (`paint-stack`); the lowest overwritten word marks the high-water mark.
pub fn stack_high_water() -> usize {
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

/// Prints one log line. With the `defmt` feature it is a `defmt::println!` (the format string
/// uses defmt's syntax and stays on the host); otherwise semihosting text (`hprintln!`). The two
/// never mix in one build: text written beside defmt frames would corrupt them.
#[macro_export]
#[cfg(feature = "defmt")]
macro_rules! say {
    ($($arg:tt)*) => { ::defmt::println!($($arg)*) };
}

/// Prints one log line (semihosting text; see the `defmt` variant).
#[macro_export]
#[cfg(not(feature = "defmt"))]
macro_rules! say {
    ($($arg:tt)*) => { ::cortex_m_semihosting::hprintln!($($arg)*) };
}

// The logger: semihosting frames by default, RTT with `rtt` (only the one named here is linked).
#[cfg(feature = "rtt")]
use defmt_rtt as _;
#[cfg(all(feature = "defmt", not(feature = "rtt")))]
use defmt_semihosting as _;

/// With defmt, a panic is logged as a defmt frame (semihosting text would corrupt the stream)
/// and ends the run, as panic-semihosting's `exit` does for text builds.
#[cfg(feature = "defmt")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // The location only: formatting the message would link core::fmt back in.
    match info.location() {
        Some(l) => defmt::println!("panic at {=str}:{=u32}", l.file(), l.line()),
        None => defmt::println!("panic"),
    }
    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
