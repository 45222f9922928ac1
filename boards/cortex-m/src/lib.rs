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

/// Time on the board: SysTick (from the core clock) and the DWT cycle counter, which on a real
/// board both count cycles. QEMU does not model DWT (CYCCNT stays 0), but under
/// `-icount shift=0` every instruction takes 1 ns and the MPS2 SysTick ticks at 25 MHz, so
/// there [`clock::ticks`] × 40 is an instruction count. A binary that uses it forwards its
/// SysTick exception to [`clock::wrapped`] (an exception handler in this library might not be
/// linked into the binary).
pub mod clock {
    use core::sync::atomic::{AtomicU32, Ordering};
    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m::peripheral::{DWT, SYST};

    /// SysTick wraps every 2^24 ticks; the exception counts the wraps.
    static WRAPS: AtomicU32 = AtomicU32::new(0);

    /// Starts both counters: the cycle counter, and SysTick from the core clock with its
    /// wrap interrupt.
    pub fn start(cp: &mut cortex_m::Peripherals) {
        cp.DCB.enable_trace();
        cp.DWT.enable_cycle_counter();
        cp.SYST.set_clock_source(SystClkSource::Core);
        cp.SYST.set_reload(0x00ff_ffff);
        cp.SYST.clear_current();
        cp.SYST.enable_interrupt();
        cp.SYST.enable_counter();
    }

    /// Call from the binary's SysTick exception.
    pub fn wrapped() {
        WRAPS.fetch_add(1, Ordering::Relaxed);
    }

    /// Ticks since start: wraps · 2^24 + how far the down-counter has run.
    pub fn ticks() -> u64 {
        loop {
            let w = WRAPS.load(Ordering::Relaxed);
            let cvr = SYST::get_current();
            if WRAPS.load(Ordering::Relaxed) == w {
                return ((w as u64) << 24) + (0x00ff_ffff - cvr) as u64;
            }
        }
    }

    /// (SysTick ticks, DWT cycles) now.
    pub fn now() -> (u64, u32) {
        (ticks(), DWT::cycle_count())
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
