//! `sprig deploy --board jetson` against a fake remote on loopback: `ssh` runs the command in a
//! local shell, `scp` copies locally, `systemctl` records its calls; the board's filesystem is a
//! temporary folder. Checks what lands where, that the model switch keeps the previous model,
//! and that bad input stops before the board is touched.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Remote {
    dir: PathBuf,
    log: PathBuf,
    fakebin: PathBuf,
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn remote(name: &str) -> Remote {
    let dir = std::env::temp_dir().join(format!("sprig-deploy-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let fakebin = dir.join("fakebin");
    std::fs::create_dir_all(&fakebin).unwrap();
    let log = dir.join("calls.log");
    let l = log.display();
    script(
        &fakebin.join("ssh"),
        &format!("echo \"ssh $1\" >> {l}\nshift\nexec /bin/sh -c \"$*\""),
    );
    script(
        &fakebin.join("scp"),
        &format!("echo \"scp $*\" >> {l}\nfor last; do :; done\ndest=${{last#*:}}\nwhile [ $# -gt 1 ]; do cp \"$1\" \"$dest\"; shift; done"),
    );
    script(
        &fakebin.join("systemctl"),
        &format!("echo \"systemctl $*\" >> {l}"),
    );
    std::fs::write(dir.join("sprig-edge"), b"\x7fELF fake aarch64 daemon").unwrap();
    Remote { dir, log, fakebin }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Remote {
    fn deploy(&self, model: &Path, extra: &[&str]) -> std::process::Output {
        let prefix = self.dir.join("board/opt/sprig");
        let units = self.dir.join("board/etc/systemd/system");
        let path = format!(
            "{}:{}",
            self.fakebin.display(),
            std::env::var("PATH").unwrap()
        );
        Command::new(env!("CARGO_BIN_EXE_sprig"))
            .args(["deploy", "--board", "jetson", "--host", "jetson@127.0.0.1"])
            .arg(model)
            .arg("--prefix")
            .arg(&prefix)
            .arg("--unit-dir")
            .arg(&units)
            .arg("--input")
            .arg(self.dir.join("board/run/sprig/detections"))
            .arg("--edge-binary")
            .arg(self.dir.join("sprig-edge"))
            .args(extra)
            .env("SPRIG_SSH", self.fakebin.join("ssh"))
            .env("SPRIG_SCP", self.fakebin.join("scp"))
            .env("PATH", path)
            .output()
            .unwrap()
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn board(&self, rel: &str) -> PathBuf {
        self.dir.join("board").join(rel)
    }
}

#[test]
fn deploy_installs_the_daemon_model_and_service_and_switches_models_atomically() {
    let r = remote("ok");
    let zones = repo().join("scenes/demo/zones.toml");
    let first = repo().join("boards/cortex-m/models/traj_int8.onnx");
    let zones_arg = zones.to_str().unwrap();
    let out = r.deploy(&first, &["--zones", zones_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edge = r.board("opt/sprig/bin/sprig-edge");
    assert_eq!(
        std::fs::read(&edge).unwrap(),
        b"\x7fELF fake aarch64 daemon"
    );
    assert_eq!(
        std::fs::metadata(&edge).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let current = r.board("opt/sprig/models/current.onnx");
    let link1 = std::fs::read_link(&current).unwrap();
    assert_eq!(
        std::fs::read(&current).unwrap(),
        std::fs::read(&first).unwrap()
    );
    assert_eq!(
        std::fs::read(r.board("opt/sprig/zones.toml")).unwrap(),
        std::fs::read(&zones).unwrap()
    );
    let unit = std::fs::read_to_string(r.board("etc/systemd/system/sprig-edge.service")).unwrap();
    let p = r.board("opt/sprig");
    let p = p.display();
    let input = r.board("run/sprig/detections");
    assert!(
        unit.contains(&format!(
            "ExecStart={p}/bin/sprig-edge hazard {p}/models/current.onnx {p}/zones.toml {}",
            input.display()
        )),
        "{unit}"
    );
    assert!(unit.contains("mkfifo") && unit.contains("WantedBy=multi-user.target"));
    let calls = r.calls();
    for c in [
        "systemctl daemon-reload",
        "systemctl enable sprig-edge.service",
        "systemctl restart sprig-edge.service",
    ] {
        assert!(calls.contains(c), "{calls}");
    }
    assert_eq!(
        std::fs::read_dir(r.board("opt/sprig/incoming"))
            .unwrap()
            .count(),
        0,
        "uploads are all moved into place"
    );

    // A new model: the link moves, the previous model stays for a rollback.
    let second = repo().join("boards/cortex-m/models/digits_int8.onnx");
    let out = r.deploy(&second, &["--zones", zones_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link2 = std::fs::read_link(&current).unwrap();
    assert_ne!(link1, link2);
    assert_eq!(
        std::fs::read(&current).unwrap(),
        std::fs::read(&second).unwrap()
    );
    let old = r.board("opt/sprig/models").join(&link1);
    assert_eq!(std::fs::read(old).unwrap(), std::fs::read(&first).unwrap());
    assert_eq!(r.calls().matches("systemctl restart").count(), 2);
}

#[test]
fn bad_input_stops_before_the_board_is_touched() {
    let r = remote("bad");
    let junk = r.dir.join("junk.onnx");
    std::fs::write(&junk, b"not a model").unwrap();
    let out = r.deploy(&junk, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.onnx"), "{err}");

    let model = repo().join("boards/cortex-m/models/digits_int8.onnx");
    let bad_zones = r.dir.join("zones.toml");
    std::fs::write(
        &bad_zones,
        "[[zone]]\nname = \"a\"\npolygon = [[0.0, 0.0], [1.0, 1.0]]\n",
    )
    .unwrap();
    let out = r.deploy(&model, &["--zones", bad_zones.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zones.toml"), "{err}");
    assert_eq!(r.calls(), "", "nothing was sent to the board");

    // Without zones: binary and model only, no service.
    let out = r.deploy(&model, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(r.board("opt/sprig/models/current.onnx").exists());
    assert!(!r.board("etc/systemd/system/sprig-edge.service").exists());
    assert!(!r.calls().contains("systemctl"));
}
