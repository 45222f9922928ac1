//! Any byte string through `Model::parse` → `arena_bytes` → `Interpreter::new` → `invoke`:
//! every outcome but a typed error or a result is a bug (a panic, an abort, a sanitizer report,
//! a runaway allocation). Inputs are left zeroed, so whatever the planner accepts also runs.
//! An odd last byte plans with half-precision arithmetic (`PlanOptions::half_arithmetic`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprig_runtime::planner::ALIGN;
use sprig_runtime::{Error, Interpreter, Model, PlanOptions};

/// Plans bigger than this are parsed and sized but not run, to keep each case fast.
const MAX_ARENA: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = Model::parse(data) else {
        return;
    };
    let opts = PlanOptions {
        half_arithmetic: data.last().is_some_and(|b| b & 1 == 1),
        recompute_constants: data.last().is_some_and(|b| b & 2 == 2),
    };
    let Ok(need) = model.arena_bytes_with(opts) else {
        return;
    };
    if need > MAX_ARENA {
        return;
    }
    // An ALIGN-aligned buffer, so the plan's exact size (need minus the alignment slack) is
    // known: that many bytes must plan, one byte fewer must be refused, never overrun.
    let exact = need - (ALIGN - 1);
    let mut backing = vec![0u128; exact.div_ceil(16)];
    let buf: &mut [u8] = bytemuck_bytes(&mut backing);
    if exact > 0 {
        let short = Interpreter::new_with(&model, &mut buf[..exact - 1], opts);
        assert!(
            matches!(short, Err(Error::ArenaTooSmall { .. })),
            "arena one byte short accepted"
        );
    }
    // Constant folding may still refuse the data (a typed error); the size itself must suffice.
    let mut it = match Interpreter::new_with(&model, &mut buf[..exact], opts) {
        Ok(it) => it,
        Err(Error::ArenaTooSmall { .. }) => panic!("the size arena_bytes gave was refused"),
        Err(_) => return,
    };
    if it.invoke().is_ok() {
        for i in 0..it.output_count() {
            let _ = it.output(i);
        }
    }
});

/// The bytes of a u128 buffer (16-byte aligned).
fn bytemuck_bytes(v: &mut [u128]) -> &mut [u8] {
    // SAFETY: u128 has no padding and any byte pattern is a valid u8.
    unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len() * 16) }
}
