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
