//! Image classification datasets: the embedded 8×8 digits, MNIST / Fashion-MNIST IDX files,
//! CIFAR-10 in its binary format.

use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a dataset could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file could not be read.
    #[error("cannot read {path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        err: std::io::Error,
    },
    /// A file's content is not what the format says.
    #[error("{path}: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: String,
    },
    /// A `KIND:PATH` spec with an unknown kind.
    #[error("unknown dataset kind '{0}' (expected digits, mnist, fashion-mnist or cifar10)")]
    UnknownKind(String),
}

/// Images as f32 NCHW in [0, 1] with integer labels.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Pixel values, `len = n · c · h · w`.
    pub images: Vec<f32>,
    /// Class labels.
    pub labels: Vec<u8>,
    /// Channels, height, width.
    pub chw: (usize, usize, usize),
    /// Number of classes.
    pub classes: usize,
}

impl ImageSet {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// No samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Elements per image.
    pub fn image_len(&self) -> usize {
        self.chw.0 * self.chw.1 * self.chw.2
    }

    /// Image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The samples at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> ImageSet {
        let mut images = Vec::with_capacity(idx.len() * self.image_len());
        for &i in idx {
            images.extend_from_slice(self.image(i));
        }
        ImageSet {
            images,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            chw: self.chw,
            classes: self.classes,
        }
    }

    /// Channels `[from, from + n)` of every image (e.g. the deployable view of a set that also
    /// carries privileged channels).
    pub fn channels(&self, from: usize, n: usize) -> ImageSet {
        let (c, h, w) = self.chw;
        assert!(from + n <= c, "channels {from}..{} of {c}", from + n);
        let plane = h * w;
        let mut images = Vec::with_capacity(self.len() * n * plane);
        for i in 0..self.len() {
            images.extend_from_slice(&self.image(i)[from * plane..(from + n) * plane]);
        }
        ImageSet {
            images,
            labels: self.labels.clone(),
            chw: (n, h, w),
            classes: self.classes,
        }
    }

    /// Learning-using-privileged-information data: every image becomes a degraded view (2×2
    /// block average at half the resolution, shown at full size, plus seeded uniform noise of
    /// ±`noise`, clipped to [0, 1]) followed by the clean image as extra channels. Models that
    /// will be deployed read the first half of the channels; a privileged teacher reads all.
    pub fn with_privileged_clean(&self, noise: f32, seed: u64) -> ImageSet {
        let (c, h, w) = self.chw;
        let plane = h * w;
        let mut images = Vec::with_capacity(2 * self.images.len());
        for i in 0..self.len() {
            let img = self.image(i);
            let mut rng = Rng(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            for ch in 0..c {
                let p = &img[ch * plane..(ch + 1) * plane];
                for y in 0..h {
                    for x in 0..w {
                        let (y0, x0) = (y & !1, x & !1);
                        let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
                        let avg = 0.25
                            * (p[y0 * w + x0] + p[y0 * w + x1] + p[y1 * w + x0] + p[y1 * w + x1]);
                        let u = rng.below(1 << 16) as f32 / 65535.0;
                        images.push((avg + noise * (2.0 * u - 1.0)).clamp(0.0, 1.0));
                    }
                }
            }
            images.extend_from_slice(img);
        }
        ImageSet {
            images,
            labels: self.labels.clone(),
            chw: (2 * c, h, w),
            classes: self.classes,
        }
    }

    /// A seeded shuffle split into (train, test) with `test_fraction` of the samples in test.
    pub fn split(&self, test_fraction: f64, seed: u64) -> (ImageSet, ImageSet) {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        shuffle(&mut idx, seed);
        let n_test = ((self.len() as f64) * test_fraction).round() as usize;
        (self.subset(&idx[n_test..]), self.subset(&idx[..n_test]))
    }
}

/// SplitMix64: a tiny seeded generator so runs are reproducible across crate versions.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Fisher–Yates shuffle with a seed.
pub fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut rng = Rng(seed);
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

const DIGITS_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// scikit-learn's 8×8 digits (1797 samples), embedded in the binary.
pub fn digits() -> ImageSet {
    parse_digits(DIGITS_GZ, Path::new("<embedded digits.csv.gz>"))
        .expect("the embedded digits file is valid")
}

fn parse_digits(gz: &[u8], path: &Path) -> Result<ImageSet, DatasetError> {
    let mut text = String::new();
    GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| DatasetError::Corrupt {
            path: path.into(),
            what: format!("not gzip text: {e}"),
        })?;
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for (ln, line) in text.lines().enumerate() {
        let vals: Vec<&str> = line.split(',').collect();
        if vals.len() != 65 {
            return Err(DatasetError::Corrupt {
                path: path.into(),
                what: format!("line {}: expected 65 values, found {}", ln + 1, vals.len()),
            });
        }
        for v in &vals[..64] {
            let x: f32 = v.trim().parse().map_err(|_| DatasetError::Corrupt {
                path: path.into(),
                what: format!("line {}: '{v}' is not a number", ln + 1),
            })?;
            images.push(x / 16.0);
        }
        let l: u8 = vals[64].trim().parse().map_err(|_| DatasetError::Corrupt {
            path: path.into(),
            what: format!("line {}: bad label", ln + 1),
        })?;
        labels.push(l);
    }
    Ok(ImageSet {
        images,
        labels,
        chw: (1, 8, 8),
        classes: 10,
    })
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let raw = std::fs::read(path).map_err(|err| DatasetError::Io {
        path: path.into(),
        err,
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DatasetError::Corrupt {
                path: path.into(),
                what: format!("bad gzip data: {e}"),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads an IDX image file (magic 0x00000803) and its label file (magic 0x00000801).
pub fn load_idx(images: &Path, labels: &Path) -> Result<ImageSet, DatasetError> {
    let im = read_maybe_gz(images)?;
    if im.len() < 16 || be_u32(&im, 0) != 0x0803 {
        return Err(DatasetError::Corrupt {
            path: images.into(),
            what: "expected IDX image magic 0x00000803".into(),
        });
    }
    let (n, h, w) = (
        be_u32(&im, 4) as usize,
        be_u32(&im, 8) as usize,
        be_u32(&im, 12) as usize,
    );
    let want = n
        .checked_mul(h * w)
        .and_then(|v| v.checked_add(16))
        .unwrap_or(usize::MAX);
    if im.len() != want {
        return Err(DatasetError::Corrupt {
            path: images.into(),
            what: format!(
                "expected {want} bytes for {n} images of {h}×{w}, found {}",
                im.len()
            ),
        });
    }
    let lb = read_maybe_gz(labels)?;
    if lb.len() < 8 || be_u32(&lb, 0) != 0x0801 {
        return Err(DatasetError::Corrupt {
            path: labels.into(),
            what: "expected IDX label magic 0x00000801".into(),
        });
    }
    if be_u32(&lb, 4) as usize != n || lb.len() != 8 + n {
        return Err(DatasetError::Corrupt {
            path: labels.into(),
            what: format!("expected {n} labels to match the image file"),
        });
    }
    if lb[8..].iter().any(|&l| l > 9) {
        return Err(DatasetError::Corrupt {
            path: labels.into(),
            what: "label above 9".into(),
        });
    }
    Ok(ImageSet {
        images: im[16..].iter().map(|&p| p as f32 / 255.0).collect(),
        labels: lb[8..].to_vec(),
        chw: (1, h, w),
        classes: 10,
    })
}

/// Bytes of one CIFAR-10 record: the label, then 1024 red, 1024 green and 1024 blue pixels
/// (each plane row-major 32×32).
const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// Reads CIFAR-10 binary batch files (`data_batch_1.bin` …, `test_batch.bin`: 10,000 records
/// each) into one 3×32×32 set.
pub fn load_cifar10(files: &[PathBuf]) -> Result<ImageSet, DatasetError> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for path in files {
        let raw = std::fs::read(path).map_err(|err| DatasetError::Io {
            path: path.clone(),
            err,
        })?;
        if raw.is_empty() || raw.len() % CIFAR_RECORD != 0 {
            return Err(DatasetError::Corrupt {
                path: path.clone(),
                what: format!(
                    "expected a whole number of {CIFAR_RECORD}-byte CIFAR-10 records (1 label + \
                     3×32×32 pixels), got {} bytes",
                    raw.len()
                ),
            });
        }
        for (i, rec) in raw.chunks_exact(CIFAR_RECORD).enumerate() {
            if rec[0] > 9 {
                return Err(DatasetError::Corrupt {
                    path: path.clone(),
                    what: format!("record {i}: label {} is not a CIFAR-10 class (0–9)", rec[0]),
                });
            }
            labels.push(rec[0]);
            images.extend(rec[1..].iter().map(|&p| p as f32 / 255.0));
        }
    }
    Ok(ImageSet {
        images,
        labels,
        chw: (3, 32, 32),
        classes: 10,
    })
}

/// Which split of an IDX dataset directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `train-*` files.
    Train,
    /// `t10k-*` files.
    Test,
}

/// Loads `KIND:PATH`: `digits` (embedded; PATH ignored, the test split is a seeded 20%),
/// `mnist:DIR` or `fashion-mnist:DIR` (IDX files, gz or raw, as Debian and the npm package ship),
/// `cifar10:DIR` (the binary version's `data_batch_1..5.bin` and `test_batch.bin`).
pub fn load_spec(spec: &str, split: Split) -> Result<ImageSet, DatasetError> {
    let (kind, path) = spec.split_once(':').unwrap_or((spec, ""));
    match kind {
        "digits" => {
            let (train, test) = digits().split(0.2, 0);
            Ok(if split == Split::Train { train } else { test })
        }
        "mnist" | "fashion-mnist" => {
            let dir = Path::new(path);
            let prefix = if split == Split::Train {
                "train"
            } else {
                "t10k"
            };
            let find = |stem: &str| -> PathBuf {
                let gz = dir.join(format!("{prefix}-{stem}.gz"));
                if gz.exists() {
                    gz
                } else {
                    dir.join(format!("{prefix}-{stem}"))
                }
            };
            load_idx(&find("images-idx3-ubyte"), &find("labels-idx1-ubyte"))
        }
        "cifar10" => {
            let dir = Path::new(path);
            let files: Vec<PathBuf> = match split {
                Split::Train => (1..=5)
                    .map(|k| dir.join(format!("data_batch_{k}.bin")))
                    .collect(),
                Split::Test => vec![dir.join("test_batch.bin")],
            };
            load_cifar10(&files)
        }
        other => Err(DatasetError::UnknownKind(other.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_complete() {
        let d = digits();
        assert_eq!(d.len(), 1797);
        assert_eq!(d.images.len(), 1797 * 64);
        assert!(d.images.iter().all(|&x| (0.0..=1.0).contains(&x)));
        let (tr, te) = d.split(0.2, 1);
        assert_eq!(tr.len() + te.len(), 1797);
        assert_eq!(te.len(), 359);
    }

    /// The privileged layout: degraded view first (each 2×2 block one value up to the noise,
    /// seeded), the clean image after it; `channels` takes either back out.
    #[test]
    fn privileged_clean_channels() {
        let d = digits().subset(&[0, 1, 2]);
        let p = d.with_privileged_clean(0.1, 7);
        assert_eq!(p.chw, (2, 8, 8));
        assert_eq!(p.labels, d.labels);
        assert_eq!(p.channels(1, 1).images, d.images);
        assert_eq!(p.images, d.with_privileged_clean(0.1, 7).images);
        assert_ne!(p.images, d.with_privileged_clean(0.1, 8).images);
        let view = p.channels(0, 1);
        assert_eq!(view.chw, (1, 8, 8));
        for i in 0..3 {
            let (v, c) = (view.image(i), d.image(i));
            assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
            for (y, x) in [(0, 0), (2, 4), (6, 6)] {
                let avg =
                    (c[y * 8 + x] + c[y * 8 + x + 1] + c[y * 8 + 8 + x] + c[y * 8 + 9 + x]) / 4.0;
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let got = v[(y + dy) * 8 + x + dx];
                    assert!((got - avg).abs() <= 0.1 + 1e-6 || got == 0.0 || got == 1.0);
                }
            }
        }
    }

    /// Files written in the CIFAR-10 binary layout load with the right labels and channel
    /// planes; truncated files and bad labels are refused naming the file.
    #[test]
    fn cifar10_binary_batches() {
        let dir = std::env::temp_dir().join(format!("sprig-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Record k: label k % 10, red plane k, green 100, blue 200 + pixel index % 50.
        let record = |k: usize| -> Vec<u8> {
            let mut r = vec![(k % 10) as u8];
            r.extend(std::iter::repeat_n(k as u8, 1024));
            r.extend(std::iter::repeat_n(100u8, 1024));
            r.extend((0..1024).map(|i| (200 + i % 50) as u8));
            r
        };
        for b in 1..=5 {
            let bytes: Vec<u8> = (0..3).flat_map(|k| record(b * 3 + k)).collect();
            std::fs::write(dir.join(format!("data_batch_{b}.bin")), bytes).unwrap();
        }
        std::fs::write(dir.join("test_batch.bin"), record(7)).unwrap();
        let spec = format!("cifar10:{}", dir.display());
        let train = load_spec(&spec, Split::Train).unwrap();
        assert_eq!((train.len(), train.chw), (15, (3, 32, 32)));
        assert_eq!(train.labels[..4], [3, 4, 5, 6]);
        let img = train.image(1);
        assert_eq!(img[0], 4.0 / 255.0);
        assert_eq!(img[1024], 100.0 / 255.0);
        assert_eq!(img[2048 + 49], 249.0 / 255.0);
        let test = load_spec(&spec, Split::Test).unwrap();
        assert_eq!((test.len(), test.labels[0]), (1, 7));

        std::fs::write(dir.join("test_batch.bin"), &record(1)[..3000]).unwrap();
        let e = load_spec(&spec, Split::Test).unwrap_err().to_string();
        assert!(
            e.contains("test_batch.bin") && e.contains("3000 bytes"),
            "{e}"
        );
        let mut bad = record(1);
        bad[0] = 12;
        std::fs::write(dir.join("test_batch.bin"), bad).unwrap();
        let e = load_spec(&spec, Split::Test).unwrap_err().to_string();
        assert!(e.contains("record 0: label 12"), "{e}");
        std::fs::remove_file(dir.join("data_batch_4.bin")).unwrap();
        let e = load_spec(&spec, Split::Train).unwrap_err().to_string();
        assert!(e.contains("data_batch_4.bin"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_idx_names_the_file() {
        let dir = std::env::temp_dir().join(format!("sprig-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let im = dir.join("img");
        std::fs::write(
            &im,
            [0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3],
        )
        .unwrap();
        let err = load_idx(&im, &dir.join("lab")).unwrap_err().to_string();
        assert!(
            err.contains("img") && err.contains("expected 24 bytes"),
            "{err}"
        );
    }
}
