//! The protobuf codec of this service's own RPCs (`build.rs` points the generated code here).
//!
//! It is prost's, except for one thing. A request body that does not decode (truncated, a
//! wrong wire type, a string that is not UTF-8) is the caller's bug. Prost's codec reports it
//! as `INTERNAL`, with no `ErrorInfo` and with the decoder's text. That breaks the error
//! contract, and it counts a client's mistake as a server fault. Here it is `INVALID_ARGUMENT`
//! with reason `MALFORMED_REQUEST`, through the one error mapping ([`super::status`]).

use tonic::{
    Status,
    codec::{BufferSettings, DecodeBuf, Decoder},
};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use crate::domain::Error;

/// [`ProstCodec`] with requests that fail to decode answered as `MALFORMED_REQUEST`.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MessageDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageDecoder(self.0.decoder())
    }
}

/// Prost's decoder with its error replaced (see the module doc).
#[derive(Debug)]
pub struct MessageDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for MessageDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|prost_status| {
            tracing::debug!(error = %prost_status.message(), "malformed request message");
            Status::from(Error::MalformedRequest)
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
