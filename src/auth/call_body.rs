//! A response body that keeps its call counted on its connection until the body ends, so a
//! streaming response (`WatchAuditEvents`) marks its connection active for as long as it
//! streams, not only until its headers are sent.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use hyper::body::{Body, Frame, SizeHint};

use crate::connections::activity::CallGuard;

pin_project_lite::pin_project! {
    /// `inner`, holding `call` until its last frame (or until it is dropped, when the client
    /// goes away).
    #[derive(Debug, Default)]
    pub struct CallBody<B> {
        #[pin]
        inner: B,
        call: Option<CallGuard>,
    }
}

impl<B> CallBody<B> {
    /// `inner`, counted as `call` while it lasts (`None`: not counted).
    pub fn new(inner: B, call: Option<CallGuard>) -> Self {
        Self { inner, call }
    }
}

impl<B: Body> Body for CallBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = &frame {
            this.call.take();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
