//! When bytes really arrived: the kernel's receive timestamp of each read.
//!
//! A client stamps a read when it returns; when many streams' events land
//! at once (128 streams' first tokens after the same prefill, a burst
//! after a stall), the last of them is read, and stamped, after the client
//! has handled all the others: its TTFT grows by the client's own queue.
//! On Linux every connection asks the kernel for the time each packet was
//! received (`SO_TIMESTAMPNS`); each read returns the time its newest
//! bytes arrived, and [`StampedTcp::take_arrival`] hands it to the reader,
//! which dates the read back by the time the bytes waited in the socket.
//! The clock stays monotonic: only the wait (a difference between two
//! wall-clock readings microseconds to milliseconds apart) comes from the
//! wall clock. Elsewhere, or where the kernel gives no time, a read is
//! stamped when it returns.

#[cfg(not(unix))]
pub(crate) use portable::StampedTcp;
#[cfg(unix)]
pub(crate) use unix::StampedTcp;

#[cfg(unix)]
mod unix {
    use std::io::{self, Write};
    use std::pin::Pin;
    use std::task::{ready, Context, Poll};
    use std::time::{Duration, Instant, SystemTime};

    use tokio::io::unix::AsyncFd;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// The longest wait in the socket believed: past it, a timestamp is taken
    /// for a clock step, not a wait, and the read is stamped when it returned.
    const LONGEST_WAIT: Duration = Duration::from_secs(60);

    /// A TCP connection whose reads say when their bytes arrived.
    pub(crate) struct StampedTcp {
        fd: AsyncFd<std::net::TcpStream>,
        /// When the newest bytes of the last read arrived (wall clock, from
        /// the kernel).
        arrived: Option<SystemTime>,
    }

    impl StampedTcp {
        /// Takes over `tcp` (it stays non-blocking) and asks the kernel for
        /// receive timestamps.
        pub(crate) fn new(tcp: tokio::net::TcpStream) -> io::Result<StampedTcp> {
            let tcp = tcp.into_std()?;
            tcp.set_nonblocking(true)?;
            #[cfg(target_os = "linux")]
            super::linux::enable_timestamps(&tcp);
            Ok(StampedTcp {
                // SAFETY: a std TcpStream owns its descriptor, which stays
                // open and the same until the AsyncFd (its owner) drops it.
                fd: unsafe { AsyncFd::register(tcp) }.map_err(io::Error::from)?,
                arrived: None,
            })
        }

        /// When the bytes of the reads since the last call arrived, as an
        /// instant: `read_at` (when the read returned) less the time the
        /// newest bytes waited in the socket. `read_at` when the kernel gave
        /// no time.
        pub(crate) fn arrival(&mut self, read_at: Instant) -> Instant {
            let Some(arrived) = self.arrived.take() else {
                return read_at;
            };
            match SystemTime::now().duration_since(arrived) {
                Ok(waited) if waited <= LONGEST_WAIT => {
                    read_at.checked_sub(waited).unwrap_or(read_at)
                }
                _ => read_at,
            }
        }
    }

    impl AsyncRead for StampedTcp {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            loop {
                let mut guard = ready!(this.fd.poll_read_ready(cx))?;
                #[cfg(target_os = "linux")]
                let read = guard.try_io(|tcp| super::linux::receive(tcp.get_ref(), buf));
                #[cfg(not(target_os = "linux"))]
                let read = guard.try_io(|tcp| {
                    let unfilled = buf.initialize_unfilled();
                    let n = std::io::Read::read(&mut &*tcp.get_ref(), unfilled)?;
                    Ok((n, None))
                });
                match read {
                    Ok(Ok((n, arrived))) => {
                        #[cfg(not(target_os = "linux"))]
                        buf.advance(n);
                        if n > 0 && buf.remaining() > 0 {
                            // A short read emptied the socket: wait for the next
                            // readiness rather than try again (one read per event).
                            guard.clear_ready();
                        }
                        if arrived.is_some() {
                            this.arrived = arrived;
                        }
                        return Poll::Ready(Ok(()));
                    }
                    Ok(Err(error)) => return Poll::Ready(Err(error)),
                    Err(_would_block) => continue,
                }
            }
        }
    }

    impl AsyncWrite for StampedTcp {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            loop {
                let mut guard = ready!(this.fd.poll_write_ready(cx))?;
                match guard.try_io(|tcp| tcp.get_ref().write(buf)) {
                    Ok(result) => return Poll::Ready(result),
                    Err(_would_block) => continue,
                }
            }
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(self.fd.get_ref().shutdown(std::net::Shutdown::Write))
        }
    }
}

/// Without `AsyncFd` (not Unix): reads are stamped when they return.
#[cfg(not(unix))]
mod portable {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Instant;

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    pub(crate) struct StampedTcp(tokio::net::TcpStream);

    impl StampedTcp {
        pub(crate) fn new(tcp: tokio::net::TcpStream) -> io::Result<StampedTcp> {
            Ok(StampedTcp(tcp))
        }

        pub(crate) fn arrival(&mut self, read_at: Instant) -> Instant {
            read_at
        }
    }

    impl AsyncRead for StampedTcp {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for StampedTcp {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem::MaybeUninit;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, SystemTime};

    use tokio::io::ReadBuf;

    /// Asks for receive timestamps; a kernel that refuses leaves reads
    /// stamped when they return.
    pub(crate) fn enable_timestamps(tcp: &std::net::TcpStream) {
        let on: libc::c_int = 1;
        // SAFETY: sets an integer socket option on a socket we own.
        unsafe {
            libc::setsockopt(
                tcp.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    /// One `recvmsg` into `buf`'s unfilled part: the bytes read (the
    /// buffer is advanced past them) and the kernel's receive time of the
    /// newest of them, when it gave one.
    pub(crate) fn receive(
        tcp: &std::net::TcpStream,
        buf: &mut ReadBuf<'_>,
    ) -> io::Result<(usize, Option<SystemTime>)> {
        // SAFETY: recvmsg writes at most `unfilled.len()` bytes into the
        // unfilled part, which is then marked initialised and filled for
        // exactly the bytes it reports; the control buffer is sized and
        // aligned for one timespec message, and the headers are read with
        // the CMSG macros within `msg_controllen`.
        unsafe {
            let unfilled: &mut [MaybeUninit<u8>] = buf.unfilled_mut();
            let mut iov = libc::iovec {
                iov_base: unfilled.as_mut_ptr().cast(),
                iov_len: unfilled.len(),
            };
            // u64s: aligned for a cmsghdr.
            let mut control = [0u64; 8];
            let mut message: libc::msghdr = std::mem::zeroed();
            message.msg_iov = &mut iov;
            message.msg_iovlen = 1;
            message.msg_control = control.as_mut_ptr().cast();
            message.msg_controllen = std::mem::size_of_val(&control) as _;
            let read = libc::recvmsg(tcp.as_raw_fd(), &mut message, 0);
            if read < 0 {
                return Err(io::Error::last_os_error());
            }
            let read = read as usize;
            buf.assume_init(read);
            buf.advance(read);
            let mut arrived = None;
            let mut header = libc::CMSG_FIRSTHDR(&message);
            while !header.is_null() {
                if (*header).cmsg_level == libc::SOL_SOCKET
                    && (*header).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let time: libc::timespec =
                        std::ptr::read_unaligned(libc::CMSG_DATA(header).cast());
                    if time.tv_sec > 0 {
                        arrived = SystemTime::UNIX_EPOCH.checked_add(Duration::new(
                            time.tv_sec as u64,
                            time.tv_nsec.clamp(0, 999_999_999) as u32,
                        ));
                    }
                }
                header = libc::CMSG_NXTHDR(&message, header);
            }
            Ok((read, arrived))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bytes that waited in the socket are dated when they arrived, not
    /// when they were read.
    #[test]
    fn a_read_is_dated_back_to_when_its_bytes_arrived() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let address = listener.local_addr().unwrap();
            let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
            let mut client = StampedTcp::new(tcp).unwrap();
            let (mut server, _) = listener.accept().unwrap();
            // The kernel turns its receive timestamps on shortly after the
            // first socket asks (deferred work): wait until one comes.
            let mut bytes = [0u8; 16];
            for _ in 0..200 {
                server.write_all(b"w").unwrap();
                std::thread::sleep(Duration::from_millis(2));
                let read = client.read(&mut bytes).await.unwrap();
                assert!(read > 0);
                let now = Instant::now();
                if client.arrival(now) < now {
                    break;
                }
            }
            server.write_all(b"first").unwrap();
            let written = Instant::now();
            std::thread::sleep(Duration::from_millis(80));
            let read = client.read(&mut bytes).await.unwrap();
            let read_at = Instant::now();
            assert_eq!(&bytes[..read], b"first");
            let arrived = client.arrival(read_at);
            let waited = read_at.duration_since(arrived);
            if cfg!(target_os = "linux") {
                assert!(
                    waited >= Duration::from_millis(70),
                    "dated back by {waited:?} only"
                );
                assert!(
                    arrived + Duration::from_millis(5) >= written,
                    "dated before the bytes were written"
                );
            }
            // Taken once: the next read without a time is stamped when read.
            assert_eq!(client.arrival(read_at), read_at);
            // Writes go through.
            client.write_all(b"back").await.unwrap();
            let mut echoed = [0u8; 4];
            server.read_exact(&mut echoed).unwrap();
            assert_eq!(&echoed, b"back");
        });
    }
}
