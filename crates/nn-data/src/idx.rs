//! The IDX file format (MNIST, Fashion-MNIST, EMNIST, ...), raw or gzip-compressed.
//!
//! # Format
//! Defined by Y. LeCun, C. Cortes and C. J. C. Burges on the MNIST page ("THE IDX
//! FILE FORMAT"). All numbers are big-endian.
//!
//! | offset | size | content |
//! | --- | --- | --- |
//! | 0 | 2 | `00 00` |
//! | 2 | 1 | element type: `08` u8, `09` i8, `0B` i16, `0C` i32, `0D` f32, `0E` f64 |
//! | 3 | 1 | number of dimensions `d` |
//! | 4 | 4·d | each dimension as a u32, outermost first |
//! | 4 + 4·d | | the elements in row-major order |
//!
//! # Compression
//! Whether a file is gzip-compressed is decided from its first two bytes (`1f 8b`),
//! never from its name, so `x.gz` holding raw IDX and `x` holding gzip both read.
//! Concatenated gzip members are decoded as one stream. Data that is still
//! compressed after that (gzip inside gzip, zip, xz, bzip2, zstd) is reported as
//! [`DataError::StillCompressed`].
//!
//! # Validation
//! The magic number, the element type, the element count (no `usize` overflow) and
//! the exact length: a file shorter than its header announces is
//! [`DataError::Truncated`], a longer one [`DataError::TrailingBytes`]. Memory is
//! allocated as data arrives, so a header announcing huge dimensions over a short
//! file costs nothing before the error.

use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use nn_tensor::Tensor;

use crate::dataset::checked_count;
use crate::error::{DataError, Result};

/// Initial buffer reservation cap: data larger than this grows as it is read.
const RESERVE_CAP: usize = 64 << 20;

/// The element type of an IDX file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdxType {
    /// Unsigned byte, code `0x08`.
    U8,
    /// Signed byte, code `0x09`.
    I8,
    /// Big-endian signed 16-bit integer, code `0x0B`.
    I16,
    /// Big-endian signed 32-bit integer, code `0x0C`.
    I32,
    /// Big-endian IEEE 754 binary32, code `0x0D`.
    F32,
    /// Big-endian IEEE 754 binary64, code `0x0E`.
    F64,
}

impl IdxType {
    /// The type for an IDX type byte, or `None` for an unknown code.
    pub fn from_code(code: u8) -> Option<IdxType> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    /// The IDX type byte.
    pub fn code(self) -> u8 {
        match self {
            IdxType::U8 => 0x08,
            IdxType::I8 => 0x09,
            IdxType::I16 => 0x0B,
            IdxType::I32 => 0x0C,
            IdxType::F32 => 0x0D,
            IdxType::F64 => 0x0E,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }
}

impl std::fmt::Display for IdxType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IdxType::U8 => "u8",
            IdxType::I8 => "i8",
            IdxType::I16 => "i16",
            IdxType::I32 => "i32",
            IdxType::F32 => "f32",
            IdxType::F64 => "f64",
        })
    }
}

/// The elements of an IDX file, in row-major order, in their stored type.
#[derive(Debug, Clone, PartialEq)]
pub enum IdxData {
    /// Type `0x08`.
    U8(Vec<u8>),
    /// Type `0x09`.
    I8(Vec<i8>),
    /// Type `0x0B`.
    I16(Vec<i16>),
    /// Type `0x0C`.
    I32(Vec<i32>),
    /// Type `0x0D`.
    F32(Vec<f32>),
    /// Type `0x0E`.
    F64(Vec<f64>),
}

impl IdxData {
    /// The element type.
    pub fn dtype(&self) -> IdxType {
        match self {
            IdxData::U8(_) => IdxType::U8,
            IdxData::I8(_) => IdxType::I8,
            IdxData::I16(_) => IdxType::I16,
            IdxData::I32(_) => IdxType::I32,
            IdxData::F32(_) => IdxType::F32,
            IdxData::F64(_) => IdxType::F64,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// Whether there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every element as `f32`: exact for u8, i8, i16 and f32; i32 beyond ±2²⁴ and
    /// f64 are rounded to nearest.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            IdxData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            IdxData::I8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            IdxData::I16(v) => v.iter().map(|&x| f32::from(x)).collect(),
            IdxData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::F32(v) => v.clone(),
            IdxData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

/// A decoded IDX file: its dimensions and elements.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    dims: Vec<usize>,
    data: IdxData,
}

impl IdxArray {
    /// An array of `dims` holding `data`.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] when the element count differs from the product
    /// of `dims`, the shape is too large for an array (the product of its non-zero
    /// dimensions above `isize::MAX`), a dimension exceeds `u32::MAX` (IDX stores
    /// dimensions as u32), or there are more than 255 dimensions.
    pub fn new(dims: Vec<usize>, data: IdxData) -> Result<IdxArray> {
        if checked_count(&dims) != Some(data.len()) {
            return Err(crate::error::invalid(
                "IdxArray::new",
                format!("dimensions {dims:?} do not hold {} elements", data.len()),
            ));
        }
        if dims.len() > 255 || dims.iter().any(|&d| u32::try_from(d).is_err()) {
            return Err(crate::error::invalid(
                "IdxArray::new",
                format!("dimensions {dims:?} cannot be stored in IDX (at most 255 dimensions below 2^32)"),
            ));
        }
        Ok(IdxArray { dims, data })
    }

    /// The dimensions, outermost first (MNIST images: `[60000, 28, 28]`).
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The elements in row-major order; their count is the product of the dimensions.
    pub fn data(&self) -> &IdxData {
        &self.data
    }

    /// The dimensions and the elements, taken apart without copying.
    pub fn into_parts(self) -> (Vec<usize>, IdxData) {
        (self.dims, self.data)
    }

    /// The element type.
    pub fn dtype(&self) -> IdxType {
        self.data.dtype()
    }

    /// The elements as an `f32` tensor of shape `dims` (conversion as
    /// [`IdxData::to_f32_vec`]).
    pub fn to_f32_tensor(&self) -> Tensor<f32> {
        Tensor::try_from_vec(&self.dims, self.data.to_f32_vec())
            .expect("IdxArray keeps its element count equal to the product of its dims")
    }

    /// The file's bytes in IDX format, uncompressed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let size = self.dtype().size();
        let mut out = Vec::with_capacity(4 + 4 * self.dims.len() + size * self.data.len());
        out.extend_from_slice(&[0, 0, self.dtype().code(), self.dims.len() as u8]);
        for &d in &self.dims {
            out.extend_from_slice(&(d as u32).to_be_bytes());
        }
        match &self.data {
            IdxData::U8(v) => out.extend_from_slice(v),
            IdxData::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
            IdxData::I16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            IdxData::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            IdxData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            IdxData::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
        }
        out
    }
}

/// Reads an IDX file, raw or gzip-compressed (detected from its bytes).
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read, and every error of
/// [`read_idx_from`], naming `path`.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| DataError::Io { path: path.into(), source })?;
    read_idx_from(BufReader::with_capacity(1 << 16, file), path)
}

/// Decodes IDX data held in memory, raw or gzip-compressed; `source` names it in
/// errors (a file name, or something like `"<memory>"`).
///
/// # Errors
/// As [`read_idx_from`].
pub fn parse_idx(bytes: &[u8], source: impl AsRef<Path>) -> Result<IdxArray> {
    read_idx_from(bytes, source)
}

/// Decodes IDX data from any reader, raw or gzip-compressed; `source` names it in
/// errors.
///
/// # Errors
/// - [`DataError::Gzip`]: a gzip stream that is corrupt or cut short.
/// - [`DataError::StillCompressed`]: compressed data remains after gzip decoding.
/// - [`DataError::BadMagic`], [`DataError::UnknownIdxType`]: not an IDX header.
/// - [`DataError::Truncated`]: fewer bytes than the header announces.
/// - [`DataError::TrailingBytes`]: more bytes than the header announces.
/// - [`DataError::Format`]: dimensions too large for an array (the element count,
///   or the product of the non-zero dimensions, overflows).
/// - [`DataError::Io`]: the reader failed.
pub fn read_idx_from<R: Read>(mut reader: R, source: impl AsRef<Path>) -> Result<IdxArray> {
    let path = source.as_ref();
    let mut prefix = [0u8; 2];
    let n = read_full(&mut reader, &mut prefix).map_err(|e| io_error(path, e, false))?;
    let prefix = &prefix[..n];
    if prefix == [0x1f, 0x8b] {
        decode(MultiGzDecoder::new(prefix.chain(reader)), path, true)
    } else {
        decode(prefix.chain(reader), path, false)
    }
}

/// Classifies an error from the (possibly decompressing) reader.
fn io_error(path: &Path, source: io::Error, gzip: bool) -> DataError {
    let decoder_error = matches!(
        source.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
    );
    if gzip && decoder_error {
        DataError::Gzip { path: path.into(), source }
    } else {
        DataError::Io { path: path.into(), source }
    }
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The compression format whose signature starts `bytes`, if any.
pub(crate) fn compression_signature(bytes: &[u8]) -> Option<&'static str> {
    const SIGNATURES: [(&[u8], &str); 5] = [
        (&[0x1f, 0x8b], "gzip"),
        (b"PK\x03\x04", "zip"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"BZh", "bzip2"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
    ];
    SIGNATURES.iter().find(|(sig, _)| bytes.starts_with(sig)).map(|&(_, name)| name)
}

fn decode<R: Read>(mut reader: R, path: &Path, gzip: bool) -> Result<IdxArray> {
    let err = |e| io_error(path, e, gzip);
    let mut magic = [0u8; 6];
    let got = read_full(&mut reader, &mut magic).map_err(err)?;
    if let Some(format) = compression_signature(&magic[..got]) {
        return Err(DataError::StillCompressed { path: path.into(), format });
    }
    if got < 4 {
        return Err(DataError::Truncated { path: path.into(), expected: 4, got: got as u64 });
    }
    if magic[0] != 0 || magic[1] != 0 {
        return Err(DataError::BadMagic { path: path.into(), found: [magic[0], magic[1], magic[2], magic[3]] });
    }
    let dtype = IdxType::from_code(magic[2]).ok_or(DataError::UnknownIdxType { path: path.into(), code: magic[2] })?;
    let rank = usize::from(magic[3]);
    let header_len = 4 + 4 * rank;

    // The header: the 2 bytes already read past the magic, then the rest.
    let mut header = vec![0u8; 4 * rank];
    let carried = (got - 4).min(header.len());
    header[..carried].copy_from_slice(&magic[4..4 + carried]);
    let more = read_full(&mut reader, &mut header[carried..]).map_err(err)?;
    if carried + more < header.len() {
        let present = 4 + carried + more;
        return Err(DataError::Truncated { path: path.into(), expected: header_len as u64, got: present as u64 });
    }
    // Bytes of `magic` beyond the header (rank 0 only) belong to the data.
    let spill = &magic[(4 + carried).min(got)..got];

    let dims: Vec<usize> =
        header.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let data_len = checked_count(&dims).and_then(|count| count.checked_mul(dtype.size()));
    let Some(data_len) = data_len else {
        return Err(DataError::Format {
            path: path.into(),
            message: format!("dimensions {dims:?} of {dtype} elements overflow the address space"),
        });
    };
    let expected = header_len as u64 + data_len as u64;

    let mut bytes = Vec::with_capacity(data_len.min(RESERVE_CAP));
    bytes.extend_from_slice(&spill[..spill.len().min(data_len)]);
    let want = (data_len - bytes.len()) as u64;
    (&mut reader).take(want).read_to_end(&mut bytes).map_err(err)?;
    if bytes.len() < data_len {
        let got = header_len as u64 + bytes.len() as u64;
        return Err(DataError::Truncated { path: path.into(), expected, got });
    }
    let extra = (spill.len().saturating_sub(data_len)) as u64 + io::copy(&mut reader, &mut io::sink()).map_err(err)?;
    if extra > 0 {
        return Err(DataError::TrailingBytes { path: path.into(), expected, extra });
    }

    let data = match dtype {
        IdxType::U8 => IdxData::U8(bytes),
        IdxType::I8 => IdxData::I8(bytes.iter().map(|&b| b as i8).collect()),
        IdxType::I16 => IdxData::I16(bytes.chunks_exact(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()),
        IdxType::I32 => {
            IdxData::I32(bytes.chunks_exact(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        IdxType::F32 => {
            IdxData::F32(bytes.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        IdxType::F64 => IdxData::F64(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
    };
    Ok(IdxArray { dims, data })
}
