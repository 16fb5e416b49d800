//! Standard input for a remote command: a reader streamed through the SSH
//! channel in chunks, then EOF, while the command's output is read. A large
//! file (a K3s binary is ~70 MiB) is never held in memory whole.

use std::future::Future;

use russh::ChannelWriteHalf;
use russh::client::Msg;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read from the source per channel write.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// What a command reads on stdin, and who hears how much was sent.
pub struct Stdin<'a> {
    reader: Box<dyn AsyncRead + Unpin + Send + 'a>,
    on_sent: Box<dyn FnMut(u64) + Send + 'a>,
}

impl<'a> Stdin<'a> {
    /// `on_sent` gets the running byte count after each chunk.
    pub fn new(
        reader: impl AsyncRead + Unpin + Send + 'a,
        on_sent: impl FnMut(u64) + Send + 'a,
    ) -> Self {
        Stdin {
            reader: Box::new(reader),
            on_sent: Box::new(on_sent),
        }
    }
}

/// Streams `stdin` into `write` (then EOF) while `reading` runs; returns
/// how the sending went and what `reading` returned. Sending stops when
/// `reading` ends first: a command that exited reads nothing more.
pub(crate) async fn send_while_reading<T>(
    write: &ChannelWriteHalf<Msg>,
    stdin: Stdin<'_>,
    reading: impl Future<Output = T>,
) -> (Result<(), String>, T) {
    let sending = send(write, stdin);
    tokio::pin!(sending);
    tokio::pin!(reading);
    let mut sent = None;
    loop {
        tokio::select! {
            done = &mut sending, if sent.is_none() => sent = Some(done),
            result = &mut reading => {
                let sent = sent.unwrap_or_else(|| {
                    Err("the command ended before it read all of its input".to_string())
                });
                return (sent, result);
            }
        }
    }
}

/// Copies the reader into the channel, then sends EOF even when the copy
/// failed, so the remote command ends instead of waiting for more input.
async fn send(write: &ChannelWriteHalf<Msg>, mut stdin: Stdin<'_>) -> Result<(), String> {
    let mut total = 0u64;
    let copied = copy(write, &mut stdin, &mut total).await;
    let eof = write
        .eof()
        .await
        .map_err(|e| format!("sending EOF after {total} bytes: {e}"));
    copied.and(eof)
}

async fn copy(
    write: &ChannelWriteHalf<Msg>,
    stdin: &mut Stdin<'_>,
    total: &mut u64,
) -> Result<(), String> {
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = stdin
            .reader
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading the input after {total} bytes: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        write
            .data_bytes(bytes::Bytes::copy_from_slice(&buf[..n]))
            .await
            .map_err(|e| format!("the channel closed after {total} bytes: {e}"))?;
        *total += n as u64;
        (stdin.on_sent)(*total);
    }
}
