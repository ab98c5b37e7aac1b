//! Compiles `proto/` into Rust and writes the descriptor set that reflection serves.
//!
//! protoc comes from `protoc-bin-vendored`, so a fresh machine needs no apt package.

use std::{env, path::PathBuf};

const PROTO_ROOT: &str = "proto";
const PROTOS: &[&str] = &[
    "proto/accessgrant/v1/common.proto",
    "proto/accessgrant/v1/access_grant.proto",
    "proto/accessgrant/v1/account.proto",
    "proto/accessgrant/v1/support_access.proto",
    "proto/accessgrant/v1/access_request.proto",
    "proto/accessgrant/v1/audit.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build 0.14 does not emit rerun-if-changed itself.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    // The commit, for the build-info metric; "unknown" outside a git checkout.
    let git_sha = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ACCESSGRANT_GIT_SHA={git_sha}");
    println!("cargo:rerun-if-changed=.git/HEAD");

    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("accessgrant_descriptor.bin"))
        // Requests that fail to decode become INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::grpc::codec::Codec")
        .build_client(true)
        .build_server(true)
        .compile_protos(PROTOS, &[PROTO_ROOT])?;
    Ok(())
}
