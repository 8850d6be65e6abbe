//! The two wrappers that tell a connection's state what happens on it: its
//! socket ([`Guarded`] with the connection's state: bytes arriving while idle
//! start the header-read clock) and its responses' bodies ([`GuardedBody`]: a
//! request stays in flight until its response has been written).

use crate::conns::{Conn, InFlight};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What rides along with a [`Guarded`] stream, for as long as the stream
/// lives: a connection's state, a place under a connection cap.
pub trait StreamGuard: Send + Unpin {
    /// A read brought bytes.
    fn bytes_arrived(&self) {}
}

/// A connection's socket: bytes arriving while it is idle start the
/// header-read clock.
impl StreamGuard for Arc<Conn> {
    fn bytes_arrived(&self) {
        Conn::bytes_arrived(self);
    }
}

/// A stream and its guard: the guard hears of the bytes that arrive and is
/// dropped with the stream.
pub struct Guarded<T, G> {
    inner: T,
    guard: G,
}

impl<T, G> Guarded<T, G> {
    pub fn new(inner: T, guard: G) -> Guarded<T, G> {
        Guarded { inner, guard }
    }
}

/// The socket of a connection the listener serves.
pub(crate) type Tracked<T> = Guarded<T, Arc<Conn>>;

impl<T: AsyncRead + Unpin, G: StreamGuard> AsyncRead for Guarded<T, G> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.guard.bytes_arrived();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin, G: StreamGuard> AsyncWrite for Guarded<T, G> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that keeps its request in flight until it is dropped.
pub(crate) struct GuardedBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl GuardedBody {
    pub(crate) fn new(inner: axum::body::Body, in_flight: InFlight) -> GuardedBody {
        GuardedBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
