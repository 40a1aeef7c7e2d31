//! Whatever ends a run, what it had trained is on disk and resumes: a real
//! SIGTERM, SIGHUP or SIGINT to a real child process (and a second one that
//! quits at once), stdout and stderr closed before the program writes, a full
//! disk (a size-limited tmpfs where one can be mounted, and injected write
//! failures everywhere), a second run into a live run's folder, `kill -9` at
//! random moments, and paths of the wrong kind.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use gan_gpu::checkpoint::Checkpoint;

const BIN: &str = env!("CARGO_BIN_EXE_gan-gpu");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gan-gpu-end-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// A data directory of `train` 28x28 training images and 100 test images.
fn data_dir(root: &Path, train: u32) -> PathBuf {
    common::idx_data_dir(root, train, 100)
}

/// A small CPU training run into `out`: batch 4 of tiny networks (10 steps
/// an epoch on 40 images), a checkpoint every epoch.
fn train_args(data: &Path, out: &Path, epochs: usize, hidden: usize) -> Vec<String> {
    let hidden = hidden.to_string();
    strings(&[
        "train",
        "--backend",
        "cpu",
        "--data",
        s(data),
        "--out",
        s(out),
        "--batch-size",
        "4",
        "--g-hidden",
        &hidden,
        "--d-hidden",
        &hidden,
        "--noise-dim",
        "8",
        "--epochs",
        &epochs.to_string(),
        "--checkpoint-every",
        "1",
        "--sample-every",
        "1000000",
    ])
}

fn run(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("GAN_GPU_INJECT_FAULT")
        .env_remove("GAN_GPU_DISK_FULL_AFTER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run gan-gpu")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a failed run printed one clean error line (no panic, no backtrace).
fn one_line_error(o: &Output) -> String {
    let stderr = text(&o.stderr);
    assert!(!o.status.success(), "expected a failure: {stderr}");
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name}");
}

/// Starts a training run and waits until its first epoch line: the signal
/// handlers are in place and the epoch loop is running.
fn start_training(args: &[String]) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("GAN_GPU_INJECT_FAULT")
        .env_remove("GAN_GPU_DISK_FULL_AFTER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("epoch") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the run ended before its first epoch"
        );
    }
    (child, stdout)
}

fn finish(mut child: Child, mut stdout: BufReader<std::process::ChildStdout>) -> (i32, String) {
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (status.code().expect("exited, not killed"), stderr)
}

#[test]
fn each_stop_signal_saves_a_checkpoint_that_resumes() {
    let root = temp_dir("signals");
    let data = data_dir(&root, 40);
    for (name, number) in [("TERM", 15), ("HUP", 1), ("INT", 2)] {
        let out = root.join(name);
        let args = train_args(&data, &out, 1_000_000, 8);
        let (child, stdout) = start_training(&args);
        signal(&child, name);
        let (code, stderr) = finish(child, stdout);
        assert_eq!(code, 128 + number, "SIG{name}: {stderr}");
        let checkpoint = out.join("checkpoint.safetensors");
        assert!(stderr.contains("stopping after this step"), "{stderr}");
        assert!(
            stderr.contains(&format!("checkpoint saved to {}", checkpoint.display())),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("gan-gpu train --resume {}", checkpoint.display())),
            "{stderr}"
        );
        // The last grid is written, and the checkpoint is at the step it stopped.
        assert!(out.join("final.png").is_file(), "SIG{name}: no final.png");
        let saved = Checkpoint::load(&checkpoint).unwrap();
        let step = saved.clock.step as usize;
        assert!(step > 0, "SIG{name}: stopped before the first step");
        // And it resumes: ten more steps from where it stopped.
        let resume = vec![
            "train".to_string(),
            "--backend".into(),
            "cpu".into(),
            "--data".into(),
            s(&data).into(),
            "--resume".into(),
            s(&checkpoint).into(),
            "--max-steps".into(),
            (step + 10).to_string(),
            "--quiet".into(),
        ];
        let o = run(&resume, &[]);
        assert!(o.status.success(), "SIG{name} resume: {}", text(&o.stderr));
        let resumed = Checkpoint::load(&checkpoint).unwrap();
        assert_eq!(resumed.clock.step as usize, step + 10);
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_second_signal_quits_at_once() {
    let root = temp_dir("second-signal");
    let data = data_dir(&root, 40);
    let out = root.join("run");
    // Full-width networks: saving the checkpoint after the first signal takes
    // far longer than the handler needs to see the second.
    let args = train_args(&data, &out, 1_000_000, 256);
    let (child, stdout) = start_training(&args);
    // Two different signals, so the second is not merged into the first
    // (the handler may see them in either order).
    signal(&child, "TERM");
    signal(&child, "INT");
    let (code, stderr) = finish(child, stdout);
    assert!(code == 130 || code == 143, "exit {code}: {stderr}");
    assert!(stderr.contains("quitting at once"), "{stderr}");
    assert!(!stderr.contains("resume with"), "{stderr}");
    // Whatever checkpoint the earlier epochs saved is whole.
    let checkpoint = out.join("checkpoint.safetensors");
    if checkpoint.exists() {
        Checkpoint::load(&checkpoint).unwrap();
    }
    std::fs::remove_dir_all(&root).ok();
}

/// Runs `args` with stdout and/or stderr connected to a pipe whose read end
/// is already closed, so every write to it fails with a broken pipe.
fn with_closed(args: &[String], close_stdout: bool, close_stderr: bool) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("GAN_GPU_INJECT_FAULT")
        .env_remove("GAN_GPU_DISK_FULL_AFTER");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    if close_stdout {
        cmd.stdout(writer.try_clone().unwrap());
    } else {
        cmd.stdout(Stdio::null());
    }
    if close_stderr {
        cmd.stderr(writer);
    } else {
        cmd.stderr(Stdio::piped());
    }
    let o = cmd.output().unwrap();
    let stderr = text(&o.stderr);
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    (o.status.code().expect("exited, not killed"), stderr)
}

#[test]
fn a_closed_stdout_or_stderr_never_panics() {
    let root = temp_dir("pipes");
    let data = data_dir(&root, 200);
    let out = root.join("run");

    // Training keeps going and saves, whichever stream is gone.
    for (close_out, close_err) in [(true, false), (false, true), (true, true)] {
        std::fs::remove_dir_all(&out).ok();
        let (code, stderr) = with_closed(&train_args(&data, &out, 2, 8), close_out, close_err);
        assert_eq!(
            code, 0,
            "stdout closed {close_out}, stderr closed {close_err}: {stderr}"
        );
        let saved = Checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
        assert_eq!(saved.epoch, 2);
        assert!(out.join("final.png").is_file());
    }
    let checkpoint = out.join("checkpoint.safetensors");

    // The short commands end quietly, as Unix tools do under `head`.
    let images = root.join("images.npy");
    let sample = strings(&[
        "sample",
        "--backend",
        "cpu",
        "--checkpoint",
        s(&checkpoint),
        "--n",
        "20",
        "--out",
        s(&images),
    ]);
    let eval = strings(&[
        "eval",
        "--backend",
        "cpu",
        "--images",
        s(&images),
        "--data",
        s(&data),
        "--classifier",
        s(&root.join("classifier.bin")),
    ]);
    let bench = strings(&[
        "bench",
        "--backend",
        "cpu",
        "--synthetic",
        "--warmup",
        "1",
        "--steps",
        "2",
    ]);
    let commands = [
        strings(&["--help"]),
        strings(&["train", "--help"]),
        strings(&["--version"]),
        strings(&["info"]),
        sample,
        eval,
        bench,
    ];
    for args in &commands {
        let (code, stderr) = with_closed(args, true, false);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(
            !stderr.lines().any(|l| l.starts_with("error")),
            "{args:?}: {stderr}"
        );
    }
    assert!(images.is_file(), "sample wrote nothing");
    // With stderr gone too, nothing panics.
    for args in &commands {
        let (code, _) = with_closed(args, true, true);
        assert_eq!(code, 0, "{args:?} with stdout and stderr closed");
    }
    // An error with stderr gone is still a plain failure, not a panic (101).
    let (code, _) = with_closed(&strings(&["train", "--batch-size", "0"]), true, true);
    assert_eq!(code, 1);
    std::fs::remove_dir_all(&root).ok();
}

/// The guarantees of a run that hit a full disk: one error line that names
/// a file in `out` and says the disk is full, and a whole checkpoint, at or
/// after the step of the one before.
fn lost_nothing(o: &Output, out: &Path, before: &Checkpoint) -> Checkpoint {
    let line = one_line_error(o);
    assert!(line.contains("the disk is full"), "{line}");
    assert!(line.contains(s(out)), "{line}");
    let checkpoint = out.join("checkpoint.safetensors");
    let saved = Checkpoint::load(&checkpoint).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert!(saved.clock.step >= before.clock.step, "{line}");
    assert!(!out.join("checkpoint.safetensors.tmp").exists(), "{line}");
    saved
}

fn resume_args(data: &Path, checkpoint: &Path, epochs: usize) -> Vec<String> {
    strings(&[
        "train",
        "--backend",
        "cpu",
        "--data",
        s(data),
        "--resume",
        s(checkpoint),
        "--epochs",
        &epochs.to_string(),
        "--quiet",
    ])
}

#[test]
fn a_full_disk_is_named_and_keeps_the_last_checkpoint() {
    let root = temp_dir("disk-full");
    // 200 images: enough for the classifier's batch of 100 below.
    let data = data_dir(&root, 200);
    let out = root.join("run");
    let o = run(&train_args(&data, &out, 1, 8), &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let checkpoint = out.join("checkpoint.safetensors");
    let good = std::fs::read(&checkpoint).unwrap();
    // Nothing can be written: the checkpoint stays as it was, byte for byte.
    let full = [("GAN_GPU_DISK_FULL_AFTER", "0")];
    let mut saved = Checkpoint::load(&checkpoint).unwrap();
    saved = lost_nothing(
        &run(&resume_args(&data, &checkpoint, 50), &full),
        &out,
        &saved,
    );
    assert_eq!(std::fs::read(&checkpoint).unwrap(), good);
    // The disk fills at points inside the metrics, the pictures and the
    // checkpoints of later epochs (50 epochs never fit): whatever was saved
    // before is whole.
    for budget in [300, 5_000, 60_000, 200_000, 400_000, 1_000_000] {
        let budget = budget.to_string();
        let o = run(
            &resume_args(&data, &checkpoint, 50),
            &[("GAN_GPU_DISK_FULL_AFTER", budget.as_str())],
        );
        saved = lost_nothing(&o, &out, &saved);
    }
    // Room again: the run resumes from the last checkpoint and goes on.
    let next = saved.epoch + 1;
    let o = run(&resume_args(&data, &checkpoint, next), &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(Checkpoint::load(&checkpoint).unwrap().epoch, next);

    // The classifier cache of `eval` and the files of `sample`.
    let images = root.join("images.npy");
    let sample = |path: &Path| {
        strings(&[
            "sample",
            "--backend",
            "cpu",
            "--checkpoint",
            s(&checkpoint),
            "--n",
            "20",
            "--out",
            s(path),
        ])
    };
    let line = one_line_error(&run(&sample(&images), &full));
    assert!(
        line.contains("images.npy") && line.contains("the disk is full"),
        "{line}"
    );
    assert!(run(&sample(&images), &[]).status.success());
    let cache = root.join("classifier.bin");
    let eval: Vec<String> = strings(&[
        "eval",
        "--backend",
        "cpu",
        "--images",
        s(&images),
        "--data",
        s(&data),
        "--classifier",
        s(&cache),
    ]);
    let line = one_line_error(&run(&eval, &full));
    assert!(
        line.contains("classifier.bin") && line.contains("the disk is full"),
        "{line}"
    );
    assert!(!cache.exists());
    std::fs::remove_dir_all(&root).ok();
}

/// The same on a real small filesystem: a 2 MiB tmpfs mounted in a private
/// mount namespace (`unshare`), filled up to a few KiB before the resumed
/// run. Where the machine allows no such mount, this says so and returns;
/// the injected failures above still run.
#[test]
fn a_full_tmpfs_keeps_the_last_checkpoint() {
    let root = temp_dir("tmpfs");
    let data = data_dir(&root, 40);
    let mount = root.join("mnt");
    let keep = root.join("keep");
    std::fs::create_dir_all(&mount).unwrap();
    std::fs::create_dir_all(&keep).unwrap();
    let out = mount.join("run");
    let first = shell_words(&train_args(&data, &out, 1, 8));
    let checkpoint = out.join("checkpoint.safetensors");
    let resume = shell_words(&resume_args(&data, &checkpoint, 3));
    let script = format!(
        "set -u
         mount -t tmpfs -o size=2m tmpfs {mnt} || exit 77
         {bin} {first} > /dev/null 2>&1 || exit 78
         cp {ckpt} {keep}/before
         # Fill the disk, then free 32 KiB: room for the small files, not for a checkpoint.
         head -c 4000000 /dev/zero > {mnt}/filler 2>/dev/null
         truncate -s -32768 {mnt}/filler
         {bin} {resume} > {keep}/stdout 2> {keep}/stderr
         echo $? > {keep}/code
         cp {ckpt} {keep}/after
         ls -a {out} > {keep}/listing",
        mnt = quote(s(&mount)),
        bin = quote(BIN),
        ckpt = quote(s(&checkpoint)),
        keep = quote(s(&keep)),
        out = quote(s(&out)),
    );
    let status = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .env_remove("GAN_GPU_DISK_FULL_AFTER")
        .status();
    match status.map(|s| s.code()) {
        Ok(Some(0)) => {}
        Ok(Some(78)) => panic!("the first run failed on the tmpfs"),
        other => {
            eprintln!("skipped: cannot mount a tmpfs here ({other:?}); the injected full-disk test covers this");
            std::fs::remove_dir_all(&root).ok();
            return;
        }
    }
    let read = |name: &str| std::fs::read(keep.join(name)).unwrap();
    let stderr = text(&read("stderr"));
    assert_eq!(text(&read("code")).trim(), "1", "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("the disk is full"), "{stderr}");
    assert!(errors[0].contains(s(&out)), "{stderr}");
    assert_eq!(
        read("before"),
        read("after"),
        "the checkpoint changed: {stderr}"
    );
    let saved = root.join("saved.safetensors");
    std::fs::write(&saved, read("after")).unwrap();
    Checkpoint::load(&saved).unwrap();
    assert!(!text(&read("listing")).contains("checkpoint.safetensors.tmp"));
    std::fs::remove_dir_all(&root).ok();
}

fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

fn shell_words(args: &[String]) -> String {
    args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

#[test]
fn one_run_per_output_folder() {
    let root = temp_dir("lock");
    let data = data_dir(&root, 40);
    let out = root.join("run");
    let args = train_args(&data, &out, 1_000_000, 8);
    let (child, stdout) = start_training(&args);
    let second = run(&train_args(&data, &out, 1, 8), &[]);
    let line = one_line_error(&second);
    assert!(line.contains(s(&out)), "{line}");
    assert!(line.contains(&format!("process {}", child.id())), "{line}");
    // Another folder is free.
    let o = run(&train_args(&data, &root.join("other"), 1, 8), &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // kill -9 leaves the lock file, but not a lock: the next run goes ahead.
    signal(&child, "KILL");
    let mut child = child;
    child.wait().unwrap();
    drop(stdout);
    assert!(out.join(".gan-gpu.lock").exists());
    let o = run(&train_args(&data, &out, 1, 8), &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::remove_dir_all(&root).ok();
}

/// A small pseudo-random sequence for the kill moments (seeded from the
/// clock, printed so a failure can be replayed).
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn kill_9_at_random_moments_leaves_a_loadable_checkpoint() {
    let root = temp_dir("kill-9");
    let data = data_dir(&root, 40);
    let out = root.join("run");
    let checkpoint = out.join("checkpoint.safetensors");
    let seed = std::env::var("GAN_GPU_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill moments seed {seed} (GAN_GPU_KILL_SEED={seed} replays them)");
    let mut moments = Moments(seed);
    let mut loaded = 0;
    let mut last_step = 0;
    for round in 0..30 {
        // Resume what the last kill left, or start afresh if it left nothing.
        let args = if checkpoint.exists() {
            resume_args(&data, &checkpoint, 1_000_000)
        } else {
            train_args(&data, &out, 1_000_000, 8)
        };
        let mut child = Command::new(BIN)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("GAN_GPU_DISK_FULL_AFTER")
            .spawn()
            .unwrap();
        // Every third kill comes early: while the run starts, loads the
        // data or resumes, before or around its first save.
        let span = if round % 3 == 0 { 80 } else { 600 };
        let wait = Duration::from_millis(moments.next_ms(span));
        let started = Instant::now();
        while started.elapsed() < wait {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
                panic!("round {round}: the run ended by itself ({status}): {stderr}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if checkpoint.exists() {
            let saved = Checkpoint::load(&checkpoint)
                .unwrap_or_else(|e| panic!("round {round}, after {wait:?}: {e}"));
            assert!(
                saved.clock.step as usize >= last_step,
                "round {round}: went back"
            );
            last_step = saved.clock.step as usize;
            loaded += 1;
        }
    }
    eprintln!("{loaded} of 30 kills left a checkpoint; the last at step {last_step}");
    assert!(loaded > 0, "no kill came after the first checkpoint");
    assert!(last_step > 0);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn paths_of_the_wrong_kind_are_clean_errors() {
    let root = temp_dir("paths");
    let data = data_dir(&root, 40);
    let file = root.join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let looped = root.join("loop");
    std::os::unix::fs::symlink(root.join("loop2"), &looped).unwrap();
    std::os::unix::fs::symlink(&looped, root.join("loop2")).unwrap();
    let long = root.join("x".repeat(300));
    let under_file = file.join("run");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (train_args(&data, &file, 1, 8), "is a file, not a folder"),
        (train_args(&data, &under_file, 1, 8), "a-file"),
        (train_args(&data, &looped, 1, 8), "symbolic links"),
        (train_args(&data, &long, 1, 8), "too long"),
        (
            train_args(&file, &root.join("r1"), 1, 8),
            "is not a directory",
        ),
        (
            train_args(&looped, &root.join("r2"), 1, 8),
            "symbolic links",
        ),
        (train_args(&long, &root.join("r3"), 1, 8), "too long"),
    ];
    for (args, needle) in cases {
        let line = one_line_error(&run(&args, &[]));
        assert!(line.contains(needle), "{args:?}: {line}");
    }
    std::fs::remove_dir_all(&root).ok();
}
