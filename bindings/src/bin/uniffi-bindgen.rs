//! The `uniffi-bindgen` command of this crate: generates Kotlin, Swift and Python bindings from the
//! built `libstreetsync_ffi` in library mode, e.g.
//! `uniffi-bindgen generate --library target/debug/libstreetsync_ffi.so --language kotlin --no-format --out-dir out`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
