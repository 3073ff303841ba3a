//! Builds `powercut.so` (tests/powercut/powercut.c), the LD_PRELOAD shim the power-cut tests in
//! `tests/crash.rs` run the device and the relay under, and passes its path as `POWERCUT_SO`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = PathBuf::from("powercut/powercut.c");
    println!("cargo:rerun-if-changed={}", src.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let so = out.join("powercut.so");
    // cc finds the C compiler the way the rest of the build does (CC, the target's default); it
    // builds static objects only, so the shared library is linked by calling that compiler.
    let compiler = cc::Build::new().get_compiler();
    let status = Command::new(compiler.path())
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .arg("-lpthread")
        .status()
        .expect("running the C compiler");
    assert!(status.success(), "building powercut.so failed");
    println!("cargo:rustc-env=POWERCUT_SO={}", so.display());
}
