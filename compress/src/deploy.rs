//! `sprig deploy --board jetson --host USER@ADDR MODEL`: puts the `sprig-edge` daemon, the model
//! and a systemd unit on a Jetson over ssh/scp.
//!
//! Files are uploaded into `PREFIX/incoming` first and only then moved into place, so a dropped
//! connection never leaves a half-written model behind. Models are kept by content hash under
//! `PREFIX/models/` and `PREFIX/models/current.onnx` is a symlink switched with one atomic
//! `rename` — the daemon sees the old model or the new one, never a mixture — and the previous
//! model stays on the board for a rollback (`ln -sfn OLD.onnx current.onnx`).
//!
//! `ssh` and `scp` are the system's (your `~/.ssh/config`, keys and agent apply);
//! `SPRIG_SSH` / `SPRIG_SCP` replace them (the tests use a fake remote on loopback).

use std::path::{Path, PathBuf};
use std::process::Command;

/// What to deploy and where.
#[derive(Debug, Clone)]
pub struct Deploy {
    /// `USER@ADDR` (or a `~/.ssh/config` host alias).
    pub host: String,
    /// The int8 model.
    pub model: PathBuf,
    /// Zone file: deploys the hazard pipeline as a service (`sprig-edge hazard`). Without it,
    /// the binary and the model are installed for on-demand `sprig-edge classify|profile` runs.
    pub zones: Option<PathBuf>,
    /// Where detection lines come from on the board (a file or named pipe; `-` = stdin).
    pub input: String,
    /// Install folder on the board.
    pub prefix: String,
    /// systemd unit folder on the board.
    pub unit_dir: String,
    /// A prebuilt aarch64 `sprig-edge` (else it is cross-built here).
    pub edge_binary: Option<PathBuf>,
    /// Leave the service alone (files only).
    pub no_restart: bool,
}

fn err(msg: String) -> crate::Error {
    crate::Error::Invalid(msg)
}

/// FNV-1a of the model bytes: names the model file on the board (same model, same name).
fn content_id(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}

/// The systemd unit that runs the hazard daemon from `prefix`, reading detection lines from
/// `input` (a named pipe the camera's detector writes to is created when missing).
pub fn unit_file(d: &Deploy) -> String {
    let p = &d.prefix;
    let input = &d.input;
    let exec = format!("{p}/bin/sprig-edge hazard {p}/models/current.onnx {p}/zones.toml {input}");
    let pre = if input == "-" {
        String::new()
    } else {
        // No `$` in the line: systemd would expand it.
        let parent = Path::new(input)
            .parent()
            .map_or("/".into(), |p| p.display().to_string());
        format!("ExecStartPre=/bin/sh -c 'test -e {input} || {{ mkdir -p {parent} && mkfifo {input}; }}'\n")
    };
    format!(
        "[Unit]\nDescription=sprig-edge: int8 inference with sprig-runtime\nAfter=network.target\n\n\
         [Service]\n{pre}ExecStart={exec}\nRestart=always\nRestartSec=2\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    )
}

/// Single-quotes `s` for the remote shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn run(cmd: &mut Command, what: &str) -> crate::Result<()> {
    let out = cmd.output().map_err(|e| {
        err(format!(
            "{what}: could not start {:?}: {e}",
            cmd.get_program()
        ))
    })?;
    if !out.status.success() {
        return Err(err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )));
    }
    Ok(())
}

fn tool(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

/// Cross-builds the release `sprig-edge` for aarch64 Linux and returns its path.
pub fn build_edge() -> crate::Result<PathBuf> {
    let root = crate::boards::boards_dir().join("..");
    let cargo = tool("CARGO", "cargo");
    run(
        Command::new(cargo)
            .args(["build", "--release", "--quiet", "-p", "sprig-jetson"])
            .args(["--target", "aarch64-unknown-linux-gnu"])
            .current_dir(&root),
        "cross-building sprig-edge (rustup target add aarch64-unknown-linux-gnu; apt install gcc-aarch64-linux-gnu)",
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("aarch64-unknown-linux-gnu/release/sprig-edge"))
}

/// Checks everything locally, then uploads and swaps in the files; returns what it did, one
/// line per step.
pub fn deploy(d: &Deploy) -> crate::Result<Vec<String>> {
    // Everything that can be checked here is checked before the board is touched.
    let model = crate::read_file(&d.model)?;
    let parsed = sprig_runtime::Model::parse(&model)
        .map_err(|e| err(format!("{}: {e}", d.model.display())))?;
    let mut arena = vec![
        0u8;
        parsed
            .arena_bytes()
            .map_err(|e| err(format!("{}: {e}", d.model.display())))?
    ];
    sprig_runtime::Interpreter::new(&parsed, &mut arena)
        .map_err(|e| err(format!("{}: {e}", d.model.display())))?;
    if let Some(z) = &d.zones {
        let text = String::from_utf8(crate::read_file(z)?)
            .map_err(|_| err(format!("{}: not UTF-8 text", z.display())))?;
        sprig_runtime::hazard::zones_toml::parse(&text)
            .map_err(|e| err(format!("{}: {e}", z.display())))?;
    }
    if d.host.is_empty() || d.host.starts_with('-') || d.host.contains(char::is_whitespace) {
        return Err(err(format!("--host '{}' is not USER@ADDR", d.host)));
    }
    for (what, v) in [("--prefix", &d.prefix), ("--unit-dir", &d.unit_dir)] {
        if !v.starts_with('/') {
            return Err(err(format!(
                "{what} '{v}' must be an absolute path on the board"
            )));
        }
    }
    let edge = match &d.edge_binary {
        Some(p) => p.clone(),
        None => build_edge()?,
    };
    if !edge.is_file() {
        return Err(err(format!(
            "sprig-edge binary {} not found",
            edge.display()
        )));
    }
    let mut log = Vec::new();
    let staging = tempdir()?;
    let unit = staging.join("sprig-edge.service");
    crate::write_file(&unit, unit_file(d).as_bytes())?;
    let id = content_id(&model);
    let (ssh, scp) = (tool("SPRIG_SSH", "ssh"), tool("SPRIG_SCP", "scp"));
    let p = &d.prefix;
    let incoming = format!("{p}/incoming");
    run(
        Command::new(&ssh)
            .arg(&d.host)
            .arg(format!("mkdir -p {}", sh_quote(&incoming))),
        &format!("ssh {}", d.host),
    )?;
    let service = d.zones.is_some();
    let mut upload = Command::new(&scp);
    upload.arg(&edge).arg(&d.model);
    if let Some(z) = &d.zones {
        upload.arg(z).arg(&unit);
    }
    upload.arg(format!("{}:{incoming}/", d.host));
    run(&mut upload, &format!("scp to {}", d.host))?;
    log.push(format!(
        "uploaded sprig-edge, {}{} to {}:{incoming}",
        d.model.display(),
        d.zones
            .as_ref()
            .map_or(String::new(), |z| format!(", {} and the unit", z.display())),
        d.host
    ));
    let name = |f: &Path| {
        f.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let q = |s: &str| sh_quote(s);
    let mut script = vec![
        "set -e".to_string(),
        format!(
            "mkdir -p {} {}",
            q(&format!("{p}/bin")),
            q(&format!("{p}/models"))
        ),
        format!("chmod 755 {}", q(&format!("{incoming}/{}", name(&edge)))),
        format!(
            "mv -f {} {}",
            q(&format!("{incoming}/{}", name(&edge))),
            q(&format!("{p}/bin/sprig-edge"))
        ),
        format!(
            "mv -f {} {}",
            q(&format!("{incoming}/{}", name(&d.model))),
            q(&format!("{p}/models/{id}.onnx"))
        ),
        // The switch: a new link renamed over the old one.
        format!(
            "ln -sfn {} {}",
            q(&format!("{id}.onnx")),
            q(&format!("{p}/models/current.onnx.new"))
        ),
        format!(
            "mv -Tf {} {}",
            q(&format!("{p}/models/current.onnx.new")),
            q(&format!("{p}/models/current.onnx"))
        ),
    ];
    if let Some(z) = &d.zones {
        script.push(format!(
            "mv -f {} {}",
            q(&format!("{incoming}/{}", name(z))),
            q(&format!("{p}/zones.toml"))
        ));
        script.push(format!("mkdir -p {}", q(&d.unit_dir)));
        script.push(format!(
            "mv -f {} {}",
            q(&format!("{incoming}/sprig-edge.service")),
            q(&format!("{}/sprig-edge.service", d.unit_dir))
        ));
    }
    if service && !d.no_restart {
        script.push("systemctl daemon-reload".into());
        script.push("systemctl enable sprig-edge.service".into());
        script.push("systemctl restart sprig-edge.service".into());
    }
    run(
        Command::new(&ssh).arg(&d.host).arg(script.join(" && ")),
        &format!("installing on {}", d.host),
    )?;
    log.push(format!("{p}/models/current.onnx -> {id}.onnx (switched atomically; earlier models kept in {p}/models)"));
    log.push(if service {
        format!("{p}/bin/sprig-edge and {}/sprig-edge.service installed", d.unit_dir)
    } else {
        format!("{p}/bin/sprig-edge installed (no zones: no service; run sprig-edge classify|profile {p}/models/current.onnx …)")
    });
    if service && !d.no_restart {
        log.push("systemctl daemon-reload, enable and restart sprig-edge.service".into());
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(log)
}

fn tempdir() -> crate::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("sprig-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| err(format!("{}: {e}", d.display())))?;
    Ok(d)
}
