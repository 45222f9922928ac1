//! Any plan body through `InterpreterWith::new_frozen` → `invoke`, against the digits demo
//! model, with the plan's header (model hash, body hash) made right so the checks behind the
//! hash are what is fuzzed: every outcome but a typed error or a result is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprig_runtime::frozen::{fnv1a, MAGIC, VERSION};
use sprig_runtime::Interpreter;

static MODEL: &[u8] = include_bytes!("../../../boards/cortex-m/models/digits_int8.onnx");

fuzz_target!(|body: &[u8]| {
    let mut plan = Vec::with_capacity(17 + body.len());
    plan.extend_from_slice(MAGIC);
    plan.push(VERSION);
    plan.extend_from_slice(&(MODEL.len() as u32).to_le_bytes());
    plan.extend_from_slice(&fnv1a(MODEL).to_le_bytes());
    plan.extend_from_slice(&fnv1a(body).to_le_bytes());
    plan.extend_from_slice(body);
    let mut arena = vec![0u8; 1 << 16];
    if let Ok(mut it) = Interpreter::new_frozen(MODEL, &plan, &mut arena) {
        if let Ok(x) = it.input_mut(0) {
            x.fill(0x3f);
        }
        if it.invoke().is_ok() {
            for i in 0..it.output_count() {
                let _ = it.output(i);
            }
        }
    }
});
