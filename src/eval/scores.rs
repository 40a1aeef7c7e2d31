//! The figures read off the classifier's softmax: the classifier score (the
//! Inception Score with the MNIST classifier), class coverage and, for
//! conditional samples, label accuracy.

use crate::error::{Error, Result};

/// A class counts as covered when it holds at least this share of the
/// samples: a fifth of an even share (2% for 10 classes).
pub fn coverage_min_share(classes: usize) -> f64 {
    0.2 / classes.max(1) as f64
}

/// `exp(E_x KL(p(y|x) || p(y)))`, with `p(y)` the mean of the rows of
/// `probs` (`count x classes`, each row a distribution). 1 when every sample
/// gets the same distribution; at most `classes`, reached when each sample is
/// classified with certainty and the classes are equally frequent.
pub fn classifier_score(probs: &[f64], classes: usize) -> Result<f64> {
    if classes == 0 || probs.is_empty() || !probs.len().is_multiple_of(classes) {
        return Err(Error::Eval(format!(
            "{} probabilities do not make rows of {classes} classes",
            probs.len()
        )));
    }
    let count = probs.len() / classes;
    let mut marginal = vec![0.0f64; classes];
    for row in probs.chunks_exact(classes) {
        for (m, p) in marginal.iter_mut().zip(row) {
            *m += p / count as f64;
        }
    }
    let mut kl_sum = 0.0f64;
    for row in probs.chunks_exact(classes) {
        for (&p, &m) in row.iter().zip(&marginal) {
            // p ln(p / m), with 0 ln 0 = 0 (m >= p / count > 0 where p > 0).
            if p > 0.0 {
                kl_sum += p * (p / m).ln();
            }
        }
    }
    Ok((kl_sum / count as f64).exp())
}

/// How the samples spread over the classes (by the classifier's argmax).
#[derive(Clone, Debug, PartialEq)]
pub struct Coverage {
    /// Samples per class.
    pub histogram: Vec<usize>,
    /// Classes holding at least [`coverage_min_share`] of the samples.
    pub covered: usize,
}

impl Coverage {
    /// Counts `predictions` (each below `classes`).
    pub fn of(predictions: &[usize], classes: usize) -> Coverage {
        let mut histogram = vec![0usize; classes];
        for &p in predictions {
            if let Some(h) = histogram.get_mut(p) {
                *h += 1;
            }
        }
        // h / total >= coverage_min_share(classes) = 1 / (5 classes), in
        // integers so that exactly 2% of 100 samples counts at 10 classes.
        let total = predictions.len().max(1);
        let covered = histogram
            .iter()
            .filter(|&&h| h * 5 * classes >= total)
            .count();
        Coverage { histogram, covered }
    }

    /// The share of the samples in each class.
    pub fn shares(&self) -> Vec<f64> {
        let total = self.histogram.iter().sum::<usize>().max(1) as f64;
        self.histogram.iter().map(|&h| h as f64 / total).collect()
    }
}

/// The share of samples whose prediction equals the requested label.
pub fn label_accuracy(predictions: &[usize], labels: &[u8]) -> Result<f64> {
    if predictions.len() != labels.len() || labels.is_empty() {
        return Err(Error::Eval(format!(
            "{} labels for {} images",
            labels.len(),
            predictions.len()
        )));
    }
    let hits = predictions
        .iter()
        .zip(labels)
        .filter(|(&p, &l)| p == usize::from(l))
        .count();
    Ok(hits as f64 / labels.len() as f64)
}

/// The index of the first largest value of each row of `count x classes`.
pub fn argmax_rows(values: &[f64], classes: usize) -> Vec<usize> {
    values
        .chunks_exact(classes.max(1))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_bounds() {
        // Certain and balanced over 4 classes: score 4.
        let mut probs = vec![0.0; 16];
        for i in 0..4 {
            probs[i * 4 + i] = 1.0;
        }
        assert!((classifier_score(&probs, 4).unwrap() - 4.0).abs() < 1e-12);
        // All the same distribution: score 1.
        let same = [0.1, 0.2, 0.3, 0.4].repeat(5);
        assert!((classifier_score(&same, 4).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn coverage_and_accuracy() {
        let mut preds = vec![3usize; 98];
        preds.extend([1, 1]);
        let c = Coverage::of(&preds, 10);
        assert_eq!(c.covered, 2);
        assert_eq!(c.histogram[3], 98);
        let labels: Vec<u8> = preds.iter().map(|&p| p as u8).collect();
        assert_eq!(label_accuracy(&preds, &labels).unwrap(), 1.0);
        assert!(label_accuracy(&preds, &labels[..3]).is_err());
        assert_eq!(argmax_rows(&[0.1, 0.5, 0.5, 0.9, 0.0, 0.0], 3), vec![1, 0]);
    }
}
