//! The `gan-gpu` binary: runs the command line and turns any error into one
//! line on stderr and a non-zero exit. A reader of stdout that went away (a
//! `head` that has read enough) ends a command quietly, as Unix tools do.

mod cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    quiet_wayland_probe();
    match cmd::run() {
        Ok(code) => code,
        Err(error) if error.chain().any(gan_gpu::print::is_broken_pipe) => ExitCode::SUCCESS,
        Err(error) => {
            gan_gpu::errln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// wgpu's GL backend asks EGL for a Wayland display while probing adapters;
/// without `XDG_RUNTIME_DIR` libwayland then prints "error: XDG_RUNTIME_DIR is
/// invalid or not set" although nothing is wrong. Where there is no Wayland
/// session at all, point it at a directory that holds no socket, so the probe
/// fails quietly.
fn quiet_wayland_probe() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        // Single-threaded here: nothing else reads the environment yet.
        std::env::set_var("XDG_RUNTIME_DIR", "/nonexistent-gan-gpu-runtime-dir");
    }
}
