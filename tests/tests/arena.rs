//! The arena target: every benchmark and fixture model plans its working memory within 1.1× of
//! the liveness lower bound (the most bytes live at one step, which no plan can beat).

use sprig_runtime::Model;
use std::path::Path;

#[test]
fn working_arena_is_within_ten_percent_of_the_liveness_bound() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut n = 0;
    for dir in ["bench/models", "boards/cortex-m/models", "tests/fixtures"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "onnx") {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            let r = Model::parse(&bytes)
                .unwrap()
                .arena_report::<512, 256>()
                .unwrap();
            let ratio = r.working as f64 / r.working_lower_bound.max(1) as f64;
            println!(
                "{}: working {} / bound {} = {ratio:.3}",
                p.display(),
                r.working,
                r.working_lower_bound
            );
            assert!(
                ratio <= 1.1,
                "{}: working arena {ratio:.3}× the bound",
                p.display()
            );
            n += 1;
        }
    }
    assert!(n >= 10, "only {n} models found");
}
