//! Compiles `proto/guildhall.proto` with protox (pure Rust), so building needs
//! no system `protoc`.
fn main() {
    let proto_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = proto_dir.join("guildhall.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [&proto_dir]).expect("proto/guildhall.proto compiles");
    prost_build::Config::new()
        // Payloads as `Bytes`: slices of the received frame, no copies.
        .bytes(["."])
        .compile_fds(fds)
        .expect("prost generates Rust from the descriptor set");
}
