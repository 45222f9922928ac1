//! `sprig freeze`: plans a model on the host for a device and writes the plan
//! ([`sprig_runtime::frozen`]), so the device loads it instead of planning from the ONNX graph.

use crate::{Error, Result};
use sprig_runtime::{Interpreter, Model};

/// What a frozen plan holds, for the CLI and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrozenPlan {
    /// The plan bytes.
    pub bytes: Vec<u8>,
    /// Tensors the plan keeps (the device's tensor table needs this many rows).
    pub tensors: usize,
    /// Steps (the device's node table needs this many rows).
    pub steps: usize,
    /// Arena bytes the device gives the plan.
    pub arena_bytes: usize,
}

/// Plans `model` as a microcontroller does (portable kernels: no weights packed for this CPU)
/// and freezes that plan.
pub fn freeze(model: &[u8]) -> Result<FrozenPlan> {
    let was = !sprig_runtime::kernels::optimized_allowed();
    sprig_runtime::kernels::set_portable_only(true);
    let planned = (|| {
        let parsed = Model::parse(model)?;
        let mut arena = vec![0u8; parsed.arena_bytes()?];
        let it = Interpreter::new(&parsed, &mut arena)?;
        let bytes = it.freeze(model)?;
        let report = it.arena_report();
        Ok::<_, sprig_runtime::Error>((bytes, report))
    })();
    sprig_runtime::kernels::set_portable_only(was);
    let (bytes, report) = planned?;
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    if bytes.len() < 33 {
        return Err(Error::Invalid("frozen plan shorter than its header".into()));
    }
    Ok(FrozenPlan {
        tensors: u16_at(29),
        steps: u16_at(31),
        arena_bytes: report.total,
        bytes,
    })
}
