//! The marker stream of one side: received until the last marker comes
//! back, then split into the answers to each frame.

use super::*;

/// Receives from `end` until marker `last` has come back.
pub(super) fn collect(
    end: &ClientEnd,
    last: u16,
    side: &'static str,
) -> Result<Vec<Vec<u8>>, OracleError> {
    let deadline = Instant::now() + BATCH_DEADLINE;
    let mut stream = Vec::new();
    let mut scanned = 0;
    while Instant::now() < deadline {
        end.receive(&mut stream, POLL)?;
        if stream[scanned..]
            .iter()
            .any(|frame| answered_marker(frame) == Some(last))
        {
            return Ok(stream);
        }
        scanned = stream.len();
    }
    let seen: Vec<u16> = stream.iter().filter_map(|f| answered_marker(f)).collect();
    Err(OracleError::Stream {
        side,
        what: format!(
            "marker {last} not answered within {BATCH_DEADLINE:?} ({} frames, markers {seen:?})",
            stream.len()
        ),
    })
}

/// Splits a stream at the markers `first..first + frames` into the answers
/// to each of `frames` frames, and what came after the last marker.
#[allow(clippy::type_complexity)]
pub(super) fn split(
    stream: Vec<Vec<u8>>,
    first: u16,
    frames: usize,
    side: &'static str,
) -> Result<(Vec<Vec<Vec<u8>>>, Vec<Vec<u8>>), OracleError> {
    let mut segments = Vec::with_capacity(frames);
    let mut current = Vec::new();
    for frame in stream {
        let Some(index) = answered_marker(&frame) else {
            current.push(frame);
            continue;
        };
        let Some(position) = (index as usize).checked_sub(first as usize) else {
            // A straggler from an attempt given up on.
            continue;
        };
        if position == segments.len() {
            segments.push(std::mem::take(&mut current));
        } else if position < segments.len() {
            return Err(OracleError::Stream {
                side,
                what: format!("marker {index} answered twice"),
            });
        } else if position < frames {
            return Err(OracleError::Stream {
                side,
                what: format!(
                    "marker {index} answered before marker {}: frames were reordered",
                    first as usize + segments.len()
                ),
            });
        }
    }
    if segments.len() != frames {
        return Err(OracleError::Stream {
            side,
            what: format!("{} of {frames} markers answered", segments.len()),
        });
    }
    Ok((segments, current))
}
