//! Stage checkpoints of a `[trajectory]` recipe run: each trained model (the GRU teacher and
//! every student) is saved when its stage finishes, with a fingerprint of the settings that
//! made it. A later run of the same recipe, e.g. after the first was killed, reuses every
//! finished stage whose fingerprint matches and trains only the rest. Stage training is
//! deterministic (seeded initialisation, shuffling and rotations), so the report is the same
//! as an uninterrupted run's.

use crate::train::Trained;
use crate::trajectory::Teacher;
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use sprig_models::arch::{ArchSpec, CnnModel};
use sprig_models::predictors::GruTeacher;
use std::path::{Path, PathBuf};

/// Where a run's stage checkpoints live (`<out>/ckpt`).
pub struct StageStore {
    dir: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StageState {
    fingerprint: String,
}

impl StageStore {
    /// Checkpoints under `out/ckpt`.
    pub fn new(out: &Path) -> Self {
        StageStore {
            dir: out.join("ckpt"),
        }
    }

    fn paths(&self, stage: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("traj-{stage}.safetensors")),
            self.dir.join(format!("traj-{stage}.json")),
        )
    }

    /// The weights file of `stage` when a finished checkpoint with `fingerprint` exists.
    fn finished(&self, stage: &str, fingerprint: &str) -> crate::Result<Option<PathBuf>> {
        let (st, js) = self.paths(stage);
        if !st.exists() || !js.exists() {
            return Ok(None);
        }
        let state: StageState = serde_json::from_slice(&crate::read_file(&js)?)
            .map_err(|e| crate::Error::Invalid(format!("{}: {e}", js.display())))?;
        Ok((state.fingerprint == fingerprint).then_some(st))
    }

    /// Saves `vars` as the finished `stage`: the weights first, then the JSON that marks them
    /// complete (each written to a temporary file and renamed).
    pub fn save(&self, stage: &str, fingerprint: &str, vars: &VarMap) -> crate::Result<()> {
        let (st, js) = self.paths(stage);
        std::fs::create_dir_all(&self.dir).map_err(|err| crate::Error::Io {
            path: self.dir.clone(),
            err,
        })?;
        let _ = std::fs::remove_file(&js);
        let tmp = st.with_extension("tmp~");
        vars.save(&tmp)?;
        std::fs::rename(&tmp, &st).map_err(|err| crate::Error::Io {
            path: st.clone(),
            err,
        })?;
        let json = serde_json::to_vec_pretty(&StageState {
            fingerprint: fingerprint.to_string(),
        })
        .map_err(|e| crate::Error::Invalid(e.to_string()))?;
        crate::write_file(&js, &json)
    }

    /// The finished teacher stage, if there is one for these settings.
    pub fn teacher(
        &self,
        stage: &str,
        fingerprint: &str,
        hidden: usize,
    ) -> crate::Result<Option<Teacher>> {
        let Some(path) = self.finished(stage, fingerprint)? else {
            return Ok(None);
        };
        let mut vars = VarMap::new();
        let model = GruTeacher::new(
            hidden,
            VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
        )?;
        load(&mut vars, &path)?;
        Ok(Some(Teacher { model, vars }))
    }

    /// The finished student stage, if there is one for these settings.
    pub fn student(
        &self,
        stage: &str,
        fingerprint: &str,
        spec: &ArchSpec,
    ) -> crate::Result<Option<Trained>> {
        let Some(path) = self.finished(stage, fingerprint)? else {
            return Ok(None);
        };
        let mut vars = VarMap::new();
        let model = CnnModel::new(
            spec,
            VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
        )?;
        load(&mut vars, &path)?;
        Ok(Some(Trained::new(model, vars)))
    }
}

/// Loads the model's variables (a distilled student's checkpoint also holds its KD map, which
/// the exported model does not need).
fn load(vars: &mut VarMap, path: &Path) -> crate::Result<()> {
    vars.load(path).map_err(|e| {
        crate::Error::Invalid(format!(
            "{}: {e} (delete it to retrain that stage)",
            path.display()
        ))
    })
}
