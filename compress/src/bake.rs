//! `sprig bake`: turns named graph inputs into constants.
//!
//! sprig-runtime plans every shape, axis, bound and quantization parameter once, before the first
//! inference, so a model that takes one of them as a graph input (Reshape's `shape`, Slice's
//! `starts`, Clip's `min`, QuantizeLinear's `scale`, the weights of QLinearConv…) is refused at
//! plan time. On a device those inputs never change: baking the deployed values into the file as
//! initializers makes it plannable, as onnx-simplifier's input fixing does for onnxruntime.
//!
//! The rewrite works on the protobuf wire format: every field of the model and its graph is
//! copied unchanged except the baked inputs, which become `initializer` entries (and leave the
//! graph's `input` list where the IR version allows it: from IR 4 on, an initializer need not be
//! an input, and an input with an initializer could still be overridden by a caller).

use crate::pb::Msg;
use crate::{Error, Result};
use sprig_runtime::onnx::TensorView;
use sprig_runtime::proto::{Fields, Value};
use sprig_runtime::Model;
use std::path::Path;

/// The first IR version whose initializers need not be listed among the graph inputs.
const IR_INITIALIZERS_NEED_NOT_BE_INPUTS: i64 = 4;

/// One input to bake: its graph-input name and a `TensorProto` holding its value.
#[derive(Debug, Clone)]
pub struct FixedInput {
    /// The graph input's name.
    pub name: String,
    /// A serialized `TensorProto` (any name; it is renamed to `name`).
    pub tensor: Vec<u8>,
}

impl FixedInput {
    /// Reads the value from a `.npy` array or a serialized `TensorProto` (`.pb`, the format of
    /// ONNX's own test data).
    pub fn from_file(name: &str, path: &Path) -> Result<FixedInput> {
        let is_npy = path.extension().is_some_and(|e| e == "npy");
        let tensor = if is_npy {
            let a = crate::npy::read(path)?;
            let dims: Vec<usize> = a.shape.iter().map(|&d| d as usize).collect();
            crate::pb::tensor(name, a.dtype.onnx_code() as i64, &dims, &a.bytes).0
        } else {
            let raw = crate::read_file(path)?;
            TensorView::parse(&raw).map_err(|e| {
                Error::Invalid(format!(
                    "{}: not a .npy file nor a serialized ONNX TensorProto ({e})",
                    path.display()
                ))
            })?;
            raw
        };
        Ok(FixedInput {
            name: name.into(),
            tensor,
        })
    }
}

/// What [`bake_inputs`] did.
#[derive(Debug, Clone)]
pub struct Baked {
    /// The rewritten model.
    pub bytes: Vec<u8>,
    /// Graph inputs left for the caller to feed, in file order.
    pub remaining_inputs: Vec<String>,
}

fn invalid(what: String) -> Error {
    Error::Invalid(what)
}

/// Appends field `n` with `value` to `out`, as it was on the wire.
fn copy_field(out: &mut Msg, n: u32, value: Value) {
    match value {
        Value::Varint(v) => {
            out.int(n, v as i64);
        }
        Value::Fixed64(v) => out.fixed64(n, v),
        Value::Bytes(b) => {
            out.bytes(n, b);
        }
        Value::Fixed32(v) => {
            out.f32(n, f32::from_bits(v));
        }
    }
}

/// `tensor` with its name (field 8) replaced by `name`.
fn renamed(tensor: &[u8], name: &str) -> Result<Msg> {
    let mut out = Msg::new();
    for f in Fields::new(tensor) {
        let (n, v) = f?;
        if n != 8 {
            copy_field(&mut out, n, v);
        }
    }
    out.str(8, name);
    Ok(out)
}

/// Bakes `fixed` into `model`: each named graph input becomes an initializer holding the given
/// value. Refused, naming the input: a name that is not a graph input (the error lists those
/// there are), a name given twice, and a value whose element type or shape differs from what the
/// graph declares for that input (a declared dimension without a number matches any size).
pub fn bake_inputs(model: &[u8], fixed: &[FixedInput]) -> Result<Baked> {
    let parsed = Model::parse(model)?;
    let mut inputs = Vec::new();
    for vi in parsed.inputs() {
        let vi = vi?;
        if parsed.initializer(vi.name)?.is_none() {
            inputs.push(vi);
        }
    }
    for (i, f) in fixed.iter().enumerate() {
        if fixed[..i].iter().any(|g| g.name == f.name) {
            return Err(invalid(format!("input '{}' is given twice", f.name)));
        }
        let Some(vi) = inputs.iter().find(|vi| vi.name == f.name) else {
            let names: Vec<&str> = inputs.iter().map(|vi| vi.name).collect();
            return Err(invalid(format!(
                "'{}' is not an input of this model (its inputs: {})",
                f.name,
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            )));
        };
        let value = TensorView::parse(&f.tensor)?;
        if let Some(want) = vi.dtype {
            if want != value.dtype {
                return Err(invalid(format!(
                    "input '{}' is declared {want:?}, the value given is {:?}",
                    f.name, value.dtype
                )));
            }
        }
        if let Some(want) = vi.shape {
            if want.dims() != value.shape.dims() {
                return Err(invalid(format!(
                    "input '{}' is declared with shape {:?}, the value given has {:?}",
                    f.name,
                    want.dims(),
                    value.shape.dims()
                )));
            }
        } else if let Some(dims) = declared_dims(model, &f.name)? {
            let got = value.shape.dims();
            let fits = dims.len() == got.len()
                && dims
                    .iter()
                    .zip(got)
                    .all(|(d, &g)| d.is_none_or(|d| d == g as i64));
            if !fits {
                return Err(invalid(format!(
                    "input '{}' is declared with shape {}, the value given has {:?}",
                    f.name,
                    shape_text(&dims),
                    got
                )));
            }
        }
    }
    let keep_inputs = parsed.ir_version() < IR_INITIALIZERS_NEED_NOT_BE_INPUTS;
    let mut graph = Msg::new();
    for g in Fields::new(graph_bytes(model)?) {
        let (n, v) = g?;
        if n == 11 && !keep_inputs {
            let name = value_info_name(v.as_bytes()?)?;
            if fixed.iter().any(|f| f.name == name) {
                continue;
            }
        }
        copy_field(&mut graph, n, v);
    }
    for f in fixed {
        graph.msg(5, &renamed(&f.tensor, &f.name)?);
    }
    let mut out = Msg::new();
    for m in Fields::new(model) {
        match m? {
            (7, _) => {
                out.msg(7, &graph);
            }
            (n, v) => copy_field(&mut out, n, v),
        }
    }
    let remaining_inputs = inputs
        .iter()
        .filter(|vi| !fixed.iter().any(|f| f.name == vi.name))
        .map(|vi| vi.name.to_string())
        .collect();
    // The result must read back as a model (catches a rewrite bug before a device does).
    Model::parse(&out.0)?;
    Ok(Baked {
        bytes: out.0,
        remaining_inputs,
    })
}

fn graph_bytes(model: &[u8]) -> Result<&[u8]> {
    for f in Fields::new(model) {
        if let (7, v) = f? {
            return Ok(v.as_bytes()?);
        }
    }
    Err(invalid("the model has no graph".into()))
}

fn value_info_name(vi: &[u8]) -> Result<&str> {
    for f in Fields::new(vi) {
        if let (1, v) = f? {
            return Ok(v.as_str()?);
        }
    }
    Ok("")
}

/// The declared dimensions of graph input `name` (`None` for a dimension without a number),
/// when it declares a shape at all.
fn declared_dims(model: &[u8], name: &str) -> Result<Option<Vec<Option<i64>>>> {
    for g in Fields::new(graph_bytes(model)?) {
        let (n, v) = g?;
        if n != 11 || value_info_name(v.as_bytes()?)? != name {
            continue;
        }
        // ValueInfoProto.type (2) → TypeProto.tensor_type (1) → shape (2) → dim (1) → dim_value (1).
        for t in Fields::new(v.as_bytes()?) {
            let (2, ty) = t? else { continue };
            for tt in Fields::new(ty.as_bytes()?) {
                let (1, tensor_type) = tt? else { continue };
                for s in Fields::new(tensor_type.as_bytes()?) {
                    let (2, shape) = s? else { continue };
                    let mut dims = Vec::new();
                    for d in Fields::new(shape.as_bytes()?) {
                        let (1, dim) = d? else { continue };
                        let mut value = None;
                        for e in Fields::new(dim.as_bytes()?) {
                            if let (1, x) = e? {
                                value = Some(x.as_i64()?);
                            }
                        }
                        dims.push(value);
                    }
                    return Ok(Some(dims));
                }
            }
        }
    }
    Ok(None)
}

fn shape_text(dims: &[Option<i64>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("?".into(), |d| d.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{self, Attr};

    /// `y = Reshape(x, shape)` with `shape` a graph input, as exporters of dynamic models write.
    fn reshape_model(ir_version: i64) -> Vec<u8> {
        let mut g = Msg::new();
        g.msg(
            1,
            &pb::node(
                "Reshape",
                "r",
                &["x", "shape"],
                &["y"],
                &[] as &[(&str, Attr)],
            ),
        )
        .str(2, "g")
        .msg(11, &pb::value_info("x", pb::dtype::FLOAT, &[2, 3]))
        .msg(11, &pb::value_info("shape", pb::dtype::INT64, &[2]))
        .msg(12, &pb::value_info("y", pb::dtype::FLOAT, &[3, 2]));
        let mut m = pb::model(&g, 13);
        // pb::model writes IR 8; a later field 1 overrides it on the wire.
        m.extend_from_slice(&Msg::new().int(1, ir_version).0);
        m
    }

    fn shape_value(v: &[i64]) -> FixedInput {
        let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        FixedInput {
            name: "shape".into(),
            tensor: pb::tensor("whatever", pb::dtype::INT64, &[v.len()], &raw).0,
        }
    }

    #[test]
    fn a_shape_input_is_refused_then_runs_once_baked() {
        let model = reshape_model(8);
        let parsed = Model::parse(&model).unwrap();
        assert!(
            parsed.arena_bytes().is_err(),
            "a shape given at run time must be refused"
        );

        let baked = bake_inputs(&model, &[shape_value(&[3, 2])]).unwrap();
        assert_eq!(baked.remaining_inputs, vec!["x".to_string()]);
        let parsed = Model::parse(&baked.bytes).unwrap();
        assert_eq!(
            parsed.inputs().count(),
            1,
            "IR 8: the baked input leaves the input list"
        );
        let mut arena = vec![0u8; parsed.arena_bytes().unwrap()];
        let mut it = sprig_runtime::Interpreter::new(&parsed, &mut arena).unwrap();
        let x: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        it.set_input(0, &x).unwrap();
        it.invoke().unwrap();
        let y = it.output(0).unwrap();
        assert_eq!(y.shape.dims(), &[3, 2]);
        assert_eq!(y.data, &x[..]);
    }

    #[test]
    fn before_ir4_the_baked_input_stays_listed() {
        let baked = bake_inputs(&reshape_model(3), &[shape_value(&[6, 1])]).unwrap();
        let parsed = Model::parse(&baked.bytes).unwrap();
        assert_eq!(parsed.inputs().count(), 2);
        assert!(parsed.initializer("shape").unwrap().is_some());
        let mut arena = vec![0u8; parsed.arena_bytes().unwrap()];
        let it = sprig_runtime::Interpreter::new(&parsed, &mut arena).unwrap();
        assert_eq!(it.input_count(), 1, "the planner feeds only x");
    }

    #[test]
    fn bad_requests_name_the_input() {
        let model = reshape_model(8);
        let e = bake_inputs(
            &model,
            &[FixedInput {
                name: "shap".into(),
                ..shape_value(&[3, 2])
            }],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("'shap' is not an input") && e.contains("x, shape"),
            "{e}"
        );

        let e = bake_inputs(&model, &[shape_value(&[3, 2]), shape_value(&[3, 2])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("'shape' is given twice"), "{e}");

        let e = bake_inputs(&model, &[shape_value(&[3, 2, 1])])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'shape'") && e.contains("[2]") && e.contains("[3]"),
            "{e}"
        );

        let wrong_type = FixedInput {
            name: "shape".into(),
            tensor: pb::tensor_f32("s", &[2], &[3.0, 2.0]).0,
        };
        let e = bake_inputs(&model, &[wrong_type]).unwrap_err().to_string();
        assert!(
            e.contains("'shape' is declared I64") && e.contains("F32"),
            "{e}"
        );
    }
}
