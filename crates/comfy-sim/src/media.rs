//! Tiny encoders for the files and frames the simulator hands out: a solid
//! colour PNG, a uniform grey baseline JPEG and a sine-tone WAV.
//!
//! They write real, decodable files (so a gateway can check magic bytes,
//! sizes and even decode them) without pulling an image library into the
//! test double. They trade size for simplicity: PNG data is stored, not
//! compressed.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// A PNG of `width` x `height` filled with `rgb`, with optional `tEXt`
/// chunks (ComfyUI stores the prompt and workflow that way).
pub(crate) fn png(width: u32, height: u32, rgb: [u8; 3], text: &[(&str, String)]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();

    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    // 8 bits per channel, colour type 2 (RGB), deflate, adaptive filter, no interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);

    for (keyword, value) in text {
        let mut data = keyword.as_bytes().to_vec();
        data.push(0);
        data.extend_from_slice(value.as_bytes());
        chunk(&mut out, b"tEXt", &data);
    }

    // Each row: filter type 0 ("none"), then the pixels.
    let mut row = vec![0u8];
    for _ in 0..width {
        row.extend_from_slice(&rgb);
    }
    let raw = row.repeat(height as usize);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of "stored" deflate blocks: valid, uncompressed.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// A baseline greyscale JFIF of one uniform `level` (0..=255).
///
/// Every 8x8 block has only a DC coefficient; the first block carries the
/// level and the rest repeat it with a zero difference, so two one-symbol
/// Huffman tables (plus one code for the first difference) suffice.
pub(crate) fn jpeg(width: u16, height: u16, level: u8) -> Vec<u8> {
    let dc = 8 * (i32::from(level) - 128);
    let category = 32 - dc.unsigned_abs().leading_zeros();
    let category_symbol = u8::try_from(category).unwrap_or(0);

    let mut out = vec![0xFF, 0xD8];
    segment(
        &mut out,
        0xE0,
        b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    );
    let mut quant = vec![0u8];
    quant.extend_from_slice(&[1; 64]);
    segment(&mut out, 0xDB, &quant);
    let [h1, h0] = height.to_be_bytes();
    let [w1, w0] = width.to_be_bytes();
    segment(&mut out, 0xC0, &[8, h1, h0, w1, w0, 1, 1, 0x11, 0]);
    segment(&mut out, 0xC4, &huffman_table(0x00, &[0, category_symbol]));
    segment(&mut out, 0xC4, &huffman_table(0x10, &[0]));
    segment(&mut out, 0xDA, &[1, 1, 0x00, 0, 63, 0]);

    let blocks = usize::from(width.div_ceil(8)) * usize::from(height.div_ceil(8));
    let mut bits = BitWriter::default();
    for block in 0..blocks {
        if block == 0 && category > 0 {
            bits.put(0b10, 2);
            let magnitude = if dc > 0 { dc } else { dc + (1 << category) - 1 };
            bits.put(u32::try_from(magnitude).unwrap_or(0), category);
        } else {
            bits.put(0, 1);
        }
        bits.put(0, 1); // end of block: no AC coefficients
    }
    out.extend_from_slice(&bits.finish());
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

fn segment(out: &mut Vec<u8>, marker: u8, data: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    let len = u16::try_from(data.len() + 2).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
}

/// Table with code lengths 1, 2, ... for the given symbols, one each.
fn huffman_table(class_and_id: u8, symbols: &[u8]) -> Vec<u8> {
    let mut data = vec![class_and_id];
    let mut counts = [0u8; 16];
    for count in counts.iter_mut().take(symbols.len()) {
        *count = 1;
    }
    data.extend_from_slice(&counts);
    data.extend_from_slice(symbols);
    data
}

#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    current: u8,
    used: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, count: u32) {
        for shift in (0..count).rev() {
            self.current = (self.current << 1) | u8::from((value >> shift) & 1 == 1);
            self.used += 1;
            if self.used == 8 {
                self.flush_byte();
            }
        }
    }

    fn flush_byte(&mut self) {
        self.bytes.push(self.current);
        // A 0xFF inside entropy-coded data must be followed by a stuffed zero.
        if self.current == 0xFF {
            self.bytes.push(0);
        }
        self.current = 0;
        self.used = 0;
    }

    fn finish(mut self) -> Vec<u8> {
        if self.used > 0 {
            let pad = 8 - self.used;
            self.current = (self.current << pad) | ((1 << pad) - 1);
            self.flush_byte();
        }
        self.bytes
    }
}

/// A mono 16-bit 8 kHz WAV holding a quiet 440 Hz tone of `millis` ms.
pub(crate) fn wav(millis: u32) -> Vec<u8> {
    const RATE: u32 = 8_000;
    let samples = (RATE * millis / 1000).max(1);
    let data_len = samples * 2;

    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for index in 0..samples {
        let phase = 2.0 * std::f64::consts::PI * 440.0 * f64::from(index) / f64::from(RATE);
        #[allow(clippy::cast_possible_truncation)]
        let sample = (0.25 * 32_767.0 * phase.sin()) as i16;
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// The largest padding chunk written: PNG allows up to 2^31 - 1 bytes.
const MAX_PADDING_CHUNK: u64 = 1 << 30;

/// Writes `png` to `path`, padded to `total` bytes with private ancillary
/// `pdNg` chunks of zeros before `IEND`, so it stays a valid PNG of the same
/// picture that any decoder reads (ancillary chunks it does not know are
/// skipped). Written in small blocks: memory stays flat whatever `total`.
/// Files that would need less than one chunk of padding are written as is.
pub(crate) fn write_padded_png(path: &Path, png: &[u8], total: u64) -> io::Result<()> {
    const CHUNK_OVERHEAD: u64 = 12;
    let (head, iend) = png.split_at(png.len().saturating_sub(CHUNK_OVERHEAD as usize));
    let mut file = io::BufWriter::new(fs::File::create(path)?);
    file.write_all(head)?;

    let mut left = total.saturating_sub(png.len() as u64);
    let zeros = vec![0u8; 1 << 20];
    while left >= CHUNK_OVERHEAD {
        let mut data = (left - CHUNK_OVERHEAD).min(MAX_PADDING_CHUNK);
        let after = left - CHUNK_OVERHEAD - data;
        if after > 0 && after < CHUNK_OVERHEAD {
            // Leave room for one more whole chunk rather than a stub.
            data -= CHUNK_OVERHEAD;
        }
        file.write_all(&u32::try_from(data).unwrap_or(u32::MAX).to_be_bytes())?;
        let mut crc = crc32fast::Hasher::new();
        file.write_all(b"pdNg")?;
        crc.update(b"pdNg");
        let mut unwritten = data;
        while unwritten > 0 {
            let block = &zeros[..usize::try_from(unwritten.min(zeros.len() as u64)).unwrap_or(0)];
            file.write_all(block)?;
            crc.update(block);
            unwritten -= block.len() as u64;
        }
        file.write_all(&crc.finalize().to_be_bytes())?;
        left -= data + CHUNK_OVERHEAD;
    }
    file.write_all(iend)?;
    file.flush()
}

/// Width and height from a PNG's header, if `bytes` is a PNG.
pub(crate) fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" {
        return None;
    }
    let width = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_has_signature_header_and_end() {
        let bytes = png(3, 2, [255, 0, 0], &[("prompt", "{}".to_owned())]);
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(png_size(&bytes), Some((3, 2)));
        assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND");
    }

    #[test]
    fn padded_png_has_the_exact_size_and_valid_chunks() {
        let picture = png(4, 4, [1, 2, 3], &[]);
        let folder = tempfile::tempdir().unwrap();
        for total in [
            0,
            10,
            picture.len() as u64 + 5,
            picture.len() as u64 + 12,
            5_000,
        ] {
            let path = folder.path().join("padded.png");
            write_padded_png(&path, &picture, total).unwrap();
            let bytes = fs::read(&path).unwrap();
            let expected = if total >= picture.len() as u64 + 12 {
                total
            } else {
                picture.len() as u64
            };
            assert_eq!(bytes.len() as u64, expected, "asked for {total}");
            assert_eq!(png_size(&bytes), Some((4, 4)));
            // Walk the chunks: every length and CRC is right and IEND ends it.
            let mut at = 8;
            let mut kinds = Vec::new();
            while at < bytes.len() {
                let length = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                let body = &bytes[at + 4..at + 8 + length];
                let crc = u32::from_be_bytes(
                    bytes[at + 8 + length..at + 12 + length].try_into().unwrap(),
                );
                assert_eq!(crc32(body), crc);
                kinds.push(String::from_utf8_lossy(&body[..4]).into_owned());
                at += 12 + length;
            }
            assert_eq!(kinds.last().map(String::as_str), Some("IEND"));
            assert_eq!(
                kinds.contains(&"pdNg".to_owned()),
                expected > picture.len() as u64
            );
        }
    }

    #[test]
    fn crc_matches_the_known_iend_value() {
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn jpeg_starts_like_jfif_and_ends_with_eoi() {
        for level in [0, 100, 128, 255] {
            let bytes = jpeg(16, 16, level);
            assert_eq!(&bytes[..4], &[0xFF, 0xD8, 0xFF, 0xE0]);
            assert_eq!(&bytes[bytes.len() - 2..], &[0xFF, 0xD9]);
        }
    }

    #[test]
    fn wav_header_counts_its_data() {
        let bytes = wav(100);
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(bytes.len(), 44 + 800 * 2);
    }
}
