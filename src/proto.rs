//! Generated protobuf and gRPC code, and the descriptor set that reflection serves.

/// `package accessgrant.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("accessgrant.v1");
}

/// Encoded `FileDescriptorSet` of `proto/`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/accessgrant_descriptor.bin"));
