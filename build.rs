//! Gives the cdylib the SONAME a Solaris program's loader asks for.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librsm.so.2");
    println!("cargo:rerun-if-changed=build.rs");
}
