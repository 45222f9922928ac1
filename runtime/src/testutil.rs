//! Tiny hand-encoded models for doctests and unit tests (no ONNX tooling needed).

/// Appends a protobuf varint.
fn varint(out: &mut [u8], len: &mut usize, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if *len < out.len() {
            out[*len] = if v == 0 { b } else { b | 0x80 };
        }
        *len += 1;
        if v == 0 {
            break;
        }
    }
}

fn field_bytes(out: &mut [u8], len: &mut usize, field: u32, bytes: &[u8]) {
    varint(out, len, ((field as u64) << 3) | 2);
    varint(out, len, bytes.len() as u64);
    for &b in bytes {
        if *len < out.len() {
            out[*len] = b;
        }
        *len += 1;
    }
}

fn field_varint(out: &mut [u8], len: &mut usize, field: u32, v: u64) {
    varint(out, len, (field as u64) << 3);
    varint(out, len, v);
}

/// A model `y = Relu(x)` with `x, y: float32[4]`, opset 13.
pub fn tiny_relu_model() -> heapless::Vec<u8, 96> {
    let mut out = [0u8; 96];
    let mut n = 0usize;
    // ValueInfo for a float[4] tensor
    let vi = |name: &str, buf: &mut [u8; 32]| -> usize {
        let mut dim = [0u8; 4];
        let mut dl = 0;
        field_varint(&mut dim, &mut dl, 1, 4);
        let mut shape = [0u8; 8];
        let mut sl = 0;
        field_bytes(&mut shape, &mut sl, 1, &dim[..dl]);
        let mut tt = [0u8; 16];
        let mut tl = 0;
        field_varint(&mut tt, &mut tl, 1, 1);
        field_bytes(&mut tt, &mut tl, 2, &shape[..sl]);
        let mut ty = [0u8; 20];
        let mut yl = 0;
        field_bytes(&mut ty, &mut yl, 1, &tt[..tl]);
        let mut l = 0;
        field_bytes(buf, &mut l, 1, name.as_bytes());
        field_bytes(buf, &mut l, 2, &ty[..yl]);
        l
    };
    let mut node = [0u8; 16];
    let mut nl = 0;
    field_bytes(&mut node, &mut nl, 1, b"x");
    field_bytes(&mut node, &mut nl, 2, b"y");
    field_bytes(&mut node, &mut nl, 4, b"Relu");
    let mut x = [0u8; 32];
    let xl = vi("x", &mut x);
    let mut y = [0u8; 32];
    let yl = vi("y", &mut y);
    let mut graph = [0u8; 80];
    let mut gl = 0;
    field_bytes(&mut graph, &mut gl, 1, &node[..nl]);
    field_bytes(&mut graph, &mut gl, 11, &x[..xl]);
    field_bytes(&mut graph, &mut gl, 12, &y[..yl]);
    let mut opset = [0u8; 4];
    let mut ol = 0;
    field_varint(&mut opset, &mut ol, 2, 13);
    field_varint(&mut out, &mut n, 1, 8);
    field_bytes(&mut out, &mut n, 8, &opset[..ol]);
    field_bytes(&mut out, &mut n, 7, &graph[..gl]);
    out[..n.min(96)].iter().copied().collect()
}
