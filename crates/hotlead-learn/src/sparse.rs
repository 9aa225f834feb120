//! Choosing few rules: an L1-penalised logistic regression path, fitted by coordinate
//! descent on a quadratic (IRLS) approximation of the log loss, as glmnet does
//! (Friedman, Hastie & Tibshirani, 2010, "Regularization Paths for Generalized Linear
//! Models via Coordinate Descent").
//!
//! linfa's logistic regression has an L2 penalty only (it keeps every rule, with small
//! weights) and linfa's elastic net fits a linear model, so the L1 step is written here:
//! one function, tested against known answers, working on sparse columns. Candidate rules
//! are mostly 0/1 indicators that hold for a tenth of the leads, so every step costs the
//! rule's matches, not the number of leads: standardisation stays implicit (the column
//! means move the intercept, a scalar, instead of every row).

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::fit::{SplitMix, sigmoid};
use crate::metrics;

/// A design matrix kept as its columns' non-zero entries.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub rows: usize,
    pub cols: Vec<Column>,
}

/// One column's non-zero entries, by increasing row.
#[derive(Debug, Clone, Default)]
pub struct Column {
    pub index: Vec<u32>,
    pub value: Vec<f64>,
}

impl Columns {
    /// From a dense matrix (rows × columns).
    pub fn from_dense(x: ndarray::ArrayView2<f64>) -> Columns {
        let cols = x
            .columns()
            .into_iter()
            .map(|column| {
                let mut out = Column::default();
                for (i, &v) in column.iter().enumerate() {
                    if v != 0.0 {
                        out.index.push(i as u32);
                        out.value.push(v);
                    }
                }
                out
            })
            .collect();
        Columns {
            rows: x.nrows(),
            cols,
        }
    }

    /// From rows given as their non-zero entries `(column, value)` by increasing column:
    /// the rows `select` (in that order), over `p` columns.
    pub fn from_rows(rows: &[Vec<(u32, f64)>], select: &[usize], p: usize) -> Columns {
        let mut cols = vec![Column::default(); p];
        for (k, &i) in select.iter().enumerate() {
            for &(j, v) in &rows[i] {
                cols[j as usize].index.push(k as u32);
                cols[j as usize].value.push(v);
            }
        }
        Columns {
            rows: select.len(),
            cols,
        }
    }

    /// The rows as their non-zero entries `(column, value)`, by increasing column.
    pub fn to_rows(&self) -> Vec<Vec<(u32, f64)>> {
        let mut rows = vec![Vec::new(); self.rows];
        for (j, c) in self.cols.iter().enumerate() {
            for (&i, &v) in c.index.iter().zip(&c.value) {
                rows[i as usize].push((j as u32, v));
            }
        }
        rows
    }

    /// The given columns as a dense matrix (rows × columns).
    pub fn dense(&self, columns: &[usize]) -> ndarray::Array2<f64> {
        let mut out = ndarray::Array2::zeros((self.rows, columns.len()));
        for (k, &j) in columns.iter().enumerate() {
            let c = &self.cols[j];
            for (&i, &v) in c.index.iter().zip(&c.value) {
                out[[i as usize, k]] = v;
            }
        }
        out
    }

    /// A column from its value in every row (zeros left out).
    pub fn push_dense(&mut self, values: &[f64]) {
        let mut column = Column::default();
        for (i, &v) in values.iter().enumerate() {
            if v != 0.0 {
                column.index.push(i as u32);
                column.value.push(v);
            }
        }
        self.cols.push(column);
    }

    /// Whether column `j` has one value in every row.
    pub fn is_constant(&self, j: usize) -> bool {
        let c = &self.cols[j];
        c.index.is_empty()
            || (c.index.len() == self.rows && c.value.iter().all(|v| *v == c.value[0]))
    }

    /// Per row, the sum of the given columns' values (in the columns' order).
    pub fn row_sums(&self, columns: &[usize]) -> Vec<f64> {
        let mut sums = vec![0.0; self.rows];
        for &j in columns {
            let c = &self.cols[j];
            for (&i, &v) in c.index.iter().zip(&c.value) {
                sums[i as usize] += v;
            }
        }
        sums
    }

    /// The given rows (in increasing order), renumbered from 0.
    pub fn select_rows(&self, rows: &[usize]) -> Columns {
        let mut new_index = vec![u32::MAX; self.rows];
        for (k, &i) in rows.iter().enumerate() {
            new_index[i] = k as u32;
        }
        let cols = self
            .cols
            .iter()
            .map(|c| {
                let mut out = Column::default();
                for (&i, &v) in c.index.iter().zip(&c.value) {
                    let k = new_index[i as usize];
                    if k != u32::MAX {
                        out.index.push(k);
                        out.value.push(v);
                    }
                }
                out
            })
            .collect();
        Columns {
            rows: rows.len(),
            cols,
        }
    }

    /// The linear predictor `intercept + Σ coef_j x_ij` for every row.
    pub fn predict(&self, coef: &[f64], intercept: f64) -> Vec<f64> {
        let mut eta = vec![intercept; self.rows];
        for (column, &c) in self.cols.iter().zip(coef) {
            if c != 0.0 {
                for (&i, &v) in column.index.iter().zip(&column.value) {
                    eta[i as usize] += c * v;
                }
            }
        }
        eta
    }

    /// Pairs of columns that hold (almost) the same information: `(later, earlier,
    /// correlation)` where |correlation| ≥ `limit`, on rows weighted equally. Columns
    /// in `skip` are left out.
    pub fn collinear(&self, limit: f64, skip: &[bool]) -> Vec<(usize, usize, f64)> {
        let n = self.rows.max(1) as f64;
        let p = self.cols.len();
        let (mean, sd): (Vec<f64>, Vec<f64>) = self
            .cols
            .iter()
            .map(|c| {
                let s: f64 = c.value.iter().sum();
                let ss: f64 = c.value.iter().map(|v| v * v).sum();
                let m = s / n;
                (m, (ss / n - m * m).max(0.0).sqrt())
            })
            .unzip();
        // Row-wise lists of the columns that are non-zero there, for the cross products.
        let mut by_row: Vec<Vec<(u32, f64)>> = vec![Vec::new(); self.rows];
        for (j, c) in self.cols.iter().enumerate() {
            if skip.get(j).copied().unwrap_or(false) || sd[j] <= 1e-12 {
                continue;
            }
            for (&i, &v) in c.index.iter().zip(&c.value) {
                by_row[i as usize].push((j as u32, v));
            }
        }
        let mut cross = vec![0.0; p * p];
        for row in &by_row {
            for (a, &(j, vj)) in row.iter().enumerate() {
                for &(k, vk) in &row[..a] {
                    cross[j as usize * p + k as usize] += vj * vk;
                }
            }
        }
        let mut out = Vec::new();
        for j in 0..p {
            for k in 0..j {
                let skipped = |c: usize| skip.get(c).copied().unwrap_or(false) || sd[c] <= 1e-12;
                if skipped(j) || skipped(k) {
                    continue;
                }
                let r = (cross[j * p + k] / n - mean[j] * mean[k]) / (sd[j] * sd[k]);
                if r.abs() >= limit {
                    out.push((j, k, r));
                }
            }
        }
        out
    }
}

/// What a fit is given: columns, outcomes and (for a bootstrap refit) how many times each
/// row was drawn. Columns in `excluded` never enter.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    pub x: &'a Columns,
    pub y: &'a [bool],
    pub weights: Option<&'a [f64]>,
    pub excluded: &'a [bool],
}

/// One point of a path: weights per unit of each column (0 for a column left out) and the
/// intercept.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    pub lambda: f64,
    pub coef: Vec<f64>,
    pub intercept: f64,
}

impl Solution {
    pub fn active(&self) -> usize {
        self.coef.iter().filter(|c| **c != 0.0).count()
    }
}

/// How closely each fit is solved.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    /// Coordinate descent stops when no weight moves the quadratic by more than this.
    pub inner: f64,
    /// The IRLS steps stop when no weight moves the log loss by more than this.
    pub outer: f64,
    pub max_outer: usize,
    pub max_sweeps: usize,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            inner: 1e-6,
            outer: 1e-5,
            max_outer: 50,
            max_sweeps: 2_000,
        }
    }
}

/// How the solver reads a column. Most are rule matches, 1 where the rule holds: those
/// need no multiplications, and one that holds for most rows is read through the rows
/// where it does not (a sum over the column is the sum over every row less theirs).
#[derive(Clone)]
enum Form {
    Valued,
    Ones,
    Zeros(Vec<u32>),
}

impl Form {
    fn of(column: &Column, rows: usize) -> Form {
        if !column.value.iter().all(|&x| x == 1.0) {
            return Form::Valued;
        }
        if column.index.len() * 2 <= rows {
            return Form::Ones;
        }
        let mut zeros = Vec::with_capacity(rows - column.index.len());
        let mut next = 0;
        for &i in &column.index {
            zeros.extend(next..i);
            next = i + 1;
        }
        zeros.extend(next..rows as u32);
        Form::Zeros(zeros)
    }

    fn all(x: &Columns) -> Vec<Form> {
        x.cols.iter().map(|c| Form::of(c, x.rows)).collect()
    }
}

/// The solver's state for one problem: standardisation, weights, residuals.
struct State<'a> {
    problem: Problem<'a>,
    /// Observation weights, summing to 1.
    v: Vec<f64>,
    mean: Vec<f64>,
    sd: Vec<f64>,
    usable: Vec<bool>,
    /// How each column is read.
    form: Cow<'a, [Form]>,
    /// The columns the next solve may move: usable ones that pass the strong rule.
    screened: Vec<bool>,
    /// Standardised weights and intercept.
    beta: Vec<f64>,
    b: f64,
    /// Σ_j beta_j x_ij / sd_j for every row (without the means and the intercept).
    u: Vec<f64>,
}

impl<'a> State<'a> {
    fn new(problem: Problem<'a>) -> State<'a> {
        State::with_forms(problem, Cow::Owned(Form::all(problem.x)))
    }

    /// As [`State::new`], with the columns' forms already worked out.
    fn with_forms(problem: Problem<'a>, form: Cow<'a, [Form]>) -> State<'a> {
        let n = problem.x.rows;
        let mut v: Vec<f64> = match problem.weights {
            Some(w) => w.to_vec(),
            None => vec![1.0; n],
        };
        let total: f64 = v.iter().sum::<f64>().max(1e-300);
        v.iter_mut().for_each(|w| *w /= total);
        let mut mean = Vec::with_capacity(problem.x.cols.len());
        let mut sd = Vec::with_capacity(problem.x.cols.len());
        let mut usable = Vec::with_capacity(problem.x.cols.len());
        let v_total: f64 = v.iter().sum();
        for (j, c) in problem.x.cols.iter().enumerate() {
            let (s, ss) = match &form[j] {
                Form::Ones => {
                    let s = sum4(&c.index, |i| v[i]);
                    (s, s)
                }
                Form::Zeros(zeros) => {
                    let s = v_total - sum4(zeros, |i| v[i]);
                    (s, s)
                }
                Form::Valued => (
                    sum4_valued(c, |i, x| v[i] * x),
                    sum4_valued(c, |i, x| v[i] * x * x),
                ),
            };
            let var = (ss - s * s).max(0.0);
            mean.push(s);
            sd.push(var.sqrt());
            usable.push(var > 1e-12 && !problem.excluded.get(j).copied().unwrap_or(false));
        }
        let won: f64 = v
            .iter()
            .zip(problem.y)
            .filter(|(_, y)| **y)
            .map(|(w, _)| w)
            .sum();
        let rate = won.clamp(1e-9, 1.0 - 1e-9);
        State {
            beta: vec![0.0; mean.len()],
            b: (rate / (1.0 - rate)).ln(),
            u: vec![0.0; n],
            v,
            mean,
            sd,
            screened: usable.clone(),
            usable,
            form,
            problem,
        }
    }

    /// The intercept on the columns' own scale.
    fn c(&self) -> f64 {
        self.b
            - self
                .beta
                .iter()
                .zip(self.mean.iter().zip(&self.sd))
                .filter(|(beta, _)| **beta != 0.0)
                .map(|(beta, (m, s))| beta * m / s)
                .sum::<f64>()
    }

    fn warm(&mut self, start: &Solution) {
        for j in 0..self.beta.len() {
            self.beta[j] = if self.usable[j] {
                start.coef[j] * self.sd[j]
            } else {
                0.0
            };
        }
        self.refresh_u();
        let c = self.c();
        let offset = start.intercept - c;
        self.b += offset;
    }

    /// Works out `u` from the weights.
    fn refresh_u(&mut self) {
        self.u.iter_mut().for_each(|u| *u = 0.0);
        let zero = vec![0.0; self.beta.len()];
        self.move_u(&zero);
    }

    /// Moves `u` by the change of the weights from `before`.
    fn move_u(&mut self, before: &[f64]) {
        for (j, column) in self.problem.x.cols.iter().enumerate() {
            if self.beta[j] != before[j] {
                let scale = (self.beta[j] - before[j]) / self.sd[j];
                match &self.form[j] {
                    Form::Ones => {
                        for &i in &column.index {
                            self.u[i as usize] += scale;
                        }
                    }
                    Form::Zeros(zeros) => {
                        self.u.iter_mut().for_each(|u| *u += scale);
                        for &i in zeros {
                            self.u[i as usize] -= scale;
                        }
                    }
                    Form::Valued => {
                        for (&i, &x) in column.index.iter().zip(&column.value) {
                            self.u[i as usize] += scale * x;
                        }
                    }
                }
            }
        }
    }

    /// The gradient of the mean log loss at zero weights: the path starts where the
    /// largest of them (in absolute value) is the penalty. Worked out as [`State::gradient`]
    /// does, so that a path's first solve sees exactly this penalty and keeps every
    /// weight at 0.
    fn lambda_max(&self) -> f64 {
        self.gradient().iter().fold(0.0_f64, |m, g| m.max(g.abs()))
    }

    /// The gradient of the mean log loss for every usable column at 0 (0 for the others:
    /// the screening and its checks look at no other), at the current weights, on the
    /// standardised scale.
    fn gradient(&self) -> Vec<f64> {
        let c = self.c();
        let r: Vec<f64> = self
            .u
            .iter()
            .zip(&self.v)
            .zip(self.problem.y)
            .map(|((u, v), &y)| v * (f64::from(u8::from(y)) - sigmoid(c + u)))
            .collect();
        let total: f64 = r.iter().sum();
        self.problem
            .x
            .cols
            .iter()
            .enumerate()
            .map(|(j, column)| {
                if !self.usable[j] || self.beta[j] != 0.0 {
                    return 0.0;
                }
                let dot = match &self.form[j] {
                    Form::Ones => sum4(&column.index, |i| r[i]),
                    Form::Zeros(zeros) => total - sum4(zeros, |i| r[i]),
                    Form::Valued => sum4_valued(column, |i, x| r[i] * x),
                };
                (dot - self.mean[j] * total) / self.sd[j]
            })
            .collect()
    }

    /// Solves at `lambda` on the columns the sequential strong rule keeps (Tibshirani et
    /// al., 2012: a column whose gradient was below `2·lambda − previous` stays at 0),
    /// then checks every other column and solves again while any would move.
    fn solve_screened(
        &mut self,
        lambda: f64,
        previous: f64,
        gradient: &mut Vec<f64>,
        tolerance: &Tolerance,
    ) {
        let threshold = 2.0 * lambda - previous;
        for (j, g) in gradient.iter().enumerate() {
            self.screened[j] = self.usable[j] && (self.beta[j] != 0.0 || g.abs() >= threshold);
        }
        loop {
            self.solve(lambda, tolerance);
            *gradient = self.gradient();
            let mut violated = false;
            for (j, g) in gradient.iter().enumerate() {
                if self.usable[j] && !self.screened[j] && g.abs() > lambda {
                    self.screened[j] = true;
                    violated = true;
                }
            }
            if !violated {
                return;
            }
        }
    }

    fn solution(&self, lambda: f64) -> Solution {
        let coef = self
            .beta
            .iter()
            .zip(&self.sd)
            .map(|(beta, sd)| if *beta == 0.0 { 0.0 } else { beta / sd })
            .collect();
        Solution {
            lambda,
            coef,
            intercept: self.c(),
        }
    }

    /// Minimises mean log loss + lambda · Σ|beta_j| from the current weights.
    fn solve(&mut self, lambda: f64, tolerance: &Tolerance) {
        let n = self.problem.x.rows;
        let p = self.beta.len();
        // Per row: the IRLS weight a_i and working residual e_i, side by side.
        let mut ae = vec![[0.0; 2]; n];
        let mut ax = vec![0.0; p];
        let mut axx = vec![0.0; p];
        // Whether ax and axx are worked out for this quadratic approximation.
        let mut seen = vec![false; p];
        let mut order: Vec<usize> = Vec::with_capacity(p);
        // The weights before this approximation's sweeps: `u` follows once they are done.
        let mut before = vec![0.0; p];
        for _ in 0..tolerance.max_outer {
            // The quadratic approximation at the current weights.
            let c = self.c();
            let (mut total_a, mut sum_ae) = (0.0, 0.0);
            for (i, row) in ae.iter_mut().enumerate() {
                let eta = c + self.u[i];
                let pi = sigmoid(eta);
                let w = (pi * (1.0 - pi)).max(1e-5);
                let a = self.v[i] * w;
                let e = (f64::from(u8::from(self.problem.y[i])) - pi) / w;
                *row = [a, e];
                total_a += a;
                sum_ae += a * e;
            }
            if total_a <= 0.0 {
                return;
            }
            seen.iter_mut().for_each(|s| *s = false);
            // The intercept first: it moves even where no weight does (a warm start from
            // another sample's intercept). The true residual is e_i + shift.
            let db = sum_ae / total_a;
            self.b += db;
            let mut shift = -db;
            sum_ae = 0.0;
            let mut biggest_outer: f64 = total_a * db * db;
            let mut active: Vec<usize> = (0..p).filter(|&j| self.beta[j] != 0.0).collect();
            before.copy_from_slice(&self.beta);
            let mut moved = false;
            let mut sweep_all = true;
            let mut sweeps = 0;
            loop {
                sweeps += 1;
                let mut biggest: f64 = 0.0;
                let mut entered = false;
                order.clear();
                if sweep_all {
                    order.extend((0..p).filter(|&j| self.screened[j]));
                } else {
                    order.extend_from_slice(&active);
                }
                for &j in &order {
                    let column = &self.problem.x.cols[j];
                    let form = &self.form[j];
                    let (m, s) = (self.mean[j], self.sd[j]);
                    // Σ a_i x_ij (e_i + shift); on a column's first visit, with Σ a_i x_ij
                    // and Σ a_i x_ij² (which hold while the approximation does).
                    let dot = match form {
                        Form::Ones => {
                            let d = if seen[j] {
                                sum4(&column.index, |i| ae[i][0] * ae[i][1])
                            } else {
                                let (s1, d) =
                                    sum4_pair(&column.index, |i| (ae[i][0], ae[i][0] * ae[i][1]));
                                ax[j] = s1;
                                axx[j] = s1;
                                d
                            };
                            d + shift * ax[j]
                        }
                        Form::Zeros(zeros) => {
                            // Over every row, Σ a_i (e_i + shift) is sum_ae (which the
                            // intercept keeps at 0): less the rows without the column.
                            let (za, zae) = if seen[j] {
                                (total_a - ax[j], sum4(zeros, |i| ae[i][0] * ae[i][1]))
                            } else {
                                let (za, zae) =
                                    sum4_pair(zeros, |i| (ae[i][0], ae[i][0] * ae[i][1]));
                                ax[j] = total_a - za;
                                axx[j] = ax[j];
                                (za, zae)
                            };
                            sum_ae - (zae + shift * za)
                        }
                        Form::Valued => {
                            let d = if seen[j] {
                                sum4_valued(column, |i, x| ae[i][0] * x * ae[i][1])
                            } else {
                                let (s1, s2, d) = weighted_sums(column, &ae);
                                ax[j] = s1;
                                axx[j] = s2;
                                d
                            };
                            d + shift * ax[j]
                        }
                    };
                    seen[j] = true;
                    let g = (dot - m * sum_ae) / s;
                    let h = (axx[j] - 2.0 * m * ax[j] + m * m * total_a) / (s * s);
                    if h <= 1e-300 {
                        continue;
                    }
                    let old = self.beta[j];
                    let z = h * old + g;
                    let new = if z > lambda {
                        (z - lambda) / h
                    } else if z < -lambda {
                        (z + lambda) / h
                    } else {
                        0.0
                    };
                    let delta = new - old;
                    if delta == 0.0 {
                        continue;
                    }
                    if old == 0.0 {
                        active.push(j);
                        entered = true;
                    }
                    moved = true;
                    self.beta[j] = new;
                    let step = delta / s;
                    match form {
                        Form::Ones => {
                            for &i in &column.index {
                                ae[i as usize][1] -= step;
                            }
                        }
                        Form::Zeros(zeros) => {
                            // Every row's residual down by step (the shift), but theirs.
                            shift -= step;
                            for &i in zeros {
                                ae[i as usize][1] += step;
                            }
                        }
                        Form::Valued => {
                            for (&i, &x) in column.index.iter().zip(&column.value) {
                                ae[i as usize][1] -= step * x;
                            }
                        }
                    }
                    // The centring: every row's prediction moves by -delta·m/s; the
                    // intercept b (standardised) stays, so c moves.
                    shift += step * m;
                    sum_ae += -step * ax[j] + step * m * total_a;
                    // The intercept, unpenalised, after each move.
                    let db = sum_ae / total_a;
                    self.b += db;
                    shift -= db;
                    sum_ae = 0.0;
                    biggest = biggest.max(h * delta * delta);
                }
                active.retain(|&j| self.beta[j] != 0.0);
                active.sort_unstable();
                active.dedup();
                biggest_outer = biggest_outer.max(biggest);
                if sweeps >= tolerance.max_sweeps {
                    break;
                }
                if sweep_all {
                    // Every column looked at: done when nothing moved and none entered;
                    // else settle the active ones first.
                    if biggest < tolerance.inner && !entered {
                        break;
                    }
                    sweep_all = false;
                } else if biggest < tolerance.inner {
                    // Settled on the active set: look at every column once more.
                    sweep_all = true;
                }
            }
            if moved {
                self.move_u(&before);
            }
            if biggest_outer < tolerance.outer {
                return;
            }
        }
    }
}

/// Σ term(i) over a column's rows, in four interleaved partial sums (the loop is bound by
/// the latency of the additions otherwise); always in the same order, so the same result.
#[inline(always)]
fn sum4(index: &[u32], term: impl Fn(usize) -> f64) -> f64 {
    let mut acc = [0.0; 4];
    let mut chunks = index.chunks_exact(4);
    for c in &mut chunks {
        acc[0] += term(c[0] as usize);
        acc[1] += term(c[1] as usize);
        acc[2] += term(c[2] as usize);
        acc[3] += term(c[3] as usize);
    }
    for (k, &i) in chunks.remainder().iter().enumerate() {
        acc[k] += term(i as usize);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// Two sums at once, as [`sum4`].
#[inline(always)]
fn sum4_pair(index: &[u32], term: impl Fn(usize) -> (f64, f64)) -> (f64, f64) {
    let mut acc = [[0.0; 2]; 4];
    let mut chunks = index.chunks_exact(4);
    for c in &mut chunks {
        for k in 0..4 {
            let (x, y) = term(c[k] as usize);
            acc[k][0] += x;
            acc[k][1] += y;
        }
    }
    for (k, &i) in chunks.remainder().iter().enumerate() {
        let (x, y) = term(i as usize);
        acc[k][0] += x;
        acc[k][1] += y;
    }
    (
        (acc[0][0] + acc[1][0]) + (acc[2][0] + acc[3][0]),
        (acc[0][1] + acc[1][1]) + (acc[2][1] + acc[3][1]),
    )
}

/// Σ term(i, x_i) over a column's entries, as [`sum4`].
#[inline(always)]
fn sum4_valued(column: &Column, term: impl Fn(usize, f64) -> f64) -> f64 {
    let mut acc = [0.0; 4];
    let mut rows = column.index.chunks_exact(4);
    let mut values = column.value.chunks_exact(4);
    for (c, v) in (&mut rows).zip(&mut values) {
        acc[0] += term(c[0] as usize, v[0]);
        acc[1] += term(c[1] as usize, v[1]);
        acc[2] += term(c[2] as usize, v[2]);
        acc[3] += term(c[3] as usize, v[3]);
    }
    for (k, (&i, &x)) in rows.remainder().iter().zip(values.remainder()).enumerate() {
        acc[k] += term(i as usize, x);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// (Σ a_i x_i, Σ a_i x_i², Σ a_i x_i e_i) over a column's entries.
fn weighted_sums(column: &Column, ae: &[[f64; 2]]) -> (f64, f64, f64) {
    let (mut s1, mut s2, mut d) = (0.0, 0.0, 0.0);
    for (&i, &x) in column.index.iter().zip(&column.value) {
        let [a, e] = ae[i as usize];
        s1 += a * x;
        s2 += a * x * x;
        d += a * x * e;
    }
    (s1, s2, d)
}

/// The penalties of a path: `count` values from the smallest that keeps every weight at 0
/// down to `ratio` of it, evenly on a log scale.
pub fn lambdas(problem: Problem<'_>, count: usize, ratio: f64) -> Vec<f64> {
    let top = State::new(problem).lambda_max().max(1e-12);
    let count = count.max(2);
    (0..count)
        .map(|k| top * ratio.powf(k as f64 / (count - 1) as f64))
        .collect()
}

/// Fits along `lambdas` (largest first), each from the previous solution. Stops early,
/// as glmnet does, when the training log loss no longer moves (`early`).
pub fn path(
    problem: Problem<'_>,
    lambdas: &[f64],
    tolerance: &Tolerance,
    early: bool,
) -> Vec<Solution> {
    path_until(problem, lambdas, tolerance, early, None)
}

/// [`path`], also stopping before the penalty whose index reaches `limit` (which another
/// thread may lower while this one runs).
fn path_until(
    problem: Problem<'_>,
    lambdas: &[f64],
    tolerance: &Tolerance,
    early: bool,
    limit: Option<&AtomicUsize>,
) -> Vec<Solution> {
    let mut state = State::new(problem);
    let mut out: Vec<Solution> = Vec::with_capacity(lambdas.len());
    let mut last_loss: Option<f64> = None;
    let mut gradient = state.gradient();
    let mut previous = gradient.iter().fold(0.0_f64, |m, g| m.max(g.abs()));
    for (k, &lambda) in lambdas.iter().enumerate() {
        if limit.is_some_and(|l| k >= l.load(Ordering::Relaxed)) {
            break;
        }
        // Every weight still 0 (the intercept the log-odds of winning) and no gradient
        // above the penalty: 0 is the solution, whatever the rounding of a solve's own
        // sums would say (the top of the path).
        let zero = state.beta.iter().all(|b| *b == 0.0)
            && gradient
                .iter()
                .zip(&state.usable)
                .all(|(g, usable)| !usable || g.abs() <= lambda);
        if !zero {
            state.solve_screened(lambda, previous, &mut gradient, tolerance);
        }
        previous = lambda;
        let solution = state.solution(lambda);
        let mut settled = false;
        if early {
            let eta = problem.x.predict(&solution.coef, solution.intercept);
            let loss = weighted_log_loss(&eta, problem.y, &state.v);
            settled = last_loss.is_some_and(|previous| {
                (previous - loss).abs() < 1e-5 * previous.abs() && solution.active() > 0
            });
            last_loss = Some(loss);
        }
        out.push(solution);
        if settled {
            break;
        }
    }
    out
}

/// One fit at `lambda`, starting from `start` when given.
pub fn fit_at(
    problem: Problem<'_>,
    lambda: f64,
    start: Option<&Solution>,
    tolerance: &Tolerance,
) -> Solution {
    fit_with(State::new(problem), lambda, start, tolerance)
}

fn fit_with(
    mut state: State<'_>,
    lambda: f64,
    start: Option<&Solution>,
    tolerance: &Tolerance,
) -> Solution {
    if let Some(start) = start {
        state.warm(start);
    }
    state.solve(lambda, tolerance);
    state.solution(lambda)
}

fn weighted_log_loss(eta: &[f64], y: &[bool], v: &[f64]) -> f64 {
    eta.iter()
        .zip(y)
        .zip(v)
        .map(|((&z, &y), &w)| {
            // log(1 + e^-z) for won, log(1 + e^z) for lost, computed stably.
            let z = if y { z } else { -z };
            w * if z > 0.0 {
                (-z).exp().ln_1p()
            } else {
                -z + z.exp().ln_1p()
            }
        })
        .sum()
}

/// A cross-validated path: per penalty, the mean validation log loss over the folds, its
/// standard error, and the mean validation AUC.
#[derive(Debug, Clone, PartialEq)]
pub struct CvCurve {
    pub loss: Vec<f64>,
    pub se: Vec<f64>,
    pub auc: Vec<f64>,
}

/// Each fold's path along the same penalties, validated on its held-out rows. Folds run
/// on `workers` threads; the result does not depend on how many.
pub fn cross_validate(
    x: &Columns,
    y: &[bool],
    excluded: &[bool],
    folds: &[(Vec<usize>, Vec<usize>)],
    lambdas: &[f64],
    tolerance: &Tolerance,
    workers: usize,
) -> CvCurve {
    let results = parallel(folds, workers, |fold| {
        validate_fold(x, y, excluded, fold, lambdas, tolerance, None)
    });
    curve(results.into_iter().flatten().collect(), lambdas.len())
}

/// The path on all of `problem`'s rows (stopping early as [`path`] does) and its
/// cross-validation on `folds` along the same penalties (as [`cross_validate`], as far as
/// that path goes), the fits spread over `workers` threads together: the fold paths need
/// not wait for the full one. The result does not depend on how many threads.
pub fn path_and_cross_validate(
    problem: Problem<'_>,
    folds: &[(Vec<usize>, Vec<usize>)],
    lambdas: &[f64],
    tolerance: &Tolerance,
    workers: usize,
) -> (Vec<Solution>, CvCurve) {
    // Fold paths go on to the end unless the full path has stopped before: then they
    // stop too (what they fit beyond it is dropped either way).
    let limit = AtomicUsize::new(lambdas.len());
    let jobs: Vec<Option<&(Vec<usize>, Vec<usize>)>> = std::iter::once(None)
        .chain(folds.iter().map(Some))
        .collect();
    let results = parallel(&jobs, workers, |job| match job {
        None => {
            let full = path_until(problem, lambdas, tolerance, true, None);
            limit.store(full.len(), Ordering::Relaxed);
            Fitted::Path(full)
        }
        Some(fold) => Fitted::Fold(validate_fold(
            problem.x,
            problem.y,
            problem.excluded,
            fold,
            lambdas,
            tolerance,
            Some(&limit),
        )),
    });
    let mut full = Vec::new();
    let mut used: Vec<Vec<(f64, f64)>> = Vec::new();
    for fitted in results {
        match fitted {
            Fitted::Path(path) => full = path,
            Fitted::Fold(Some(fold)) => used.push(fold),
            Fitted::Fold(None) => {}
        }
    }
    for fold in &mut used {
        fold.truncate(full.len());
    }
    let curve = curve(used, full.len());
    (full, curve)
}

enum Fitted {
    Path(Vec<Solution>),
    Fold(Option<Vec<(f64, f64)>>),
}

/// One fold's path, and per penalty the validation log loss and AUC; `None` where the
/// fold cannot be fitted (one class) or validated (no rows).
fn validate_fold(
    x: &Columns,
    y: &[bool],
    excluded: &[bool],
    (train, test): &(Vec<usize>, Vec<usize>),
    lambdas: &[f64],
    tolerance: &Tolerance,
    limit: Option<&AtomicUsize>,
) -> Option<Vec<(f64, f64)>> {
    let y_train: Vec<bool> = train.iter().map(|&i| y[i]).collect();
    let y_test: Vec<bool> = test.iter().map(|&i| y[i]).collect();
    if y_train.iter().all(|&w| w) || y_train.iter().all(|&w| !w) || test.is_empty() {
        return None;
    }
    let x_train = x.select_rows(train);
    let x_test = x.select_rows(test);
    let problem = Problem {
        x: &x_train,
        y: &y_train,
        weights: None,
        excluded,
    };
    let solutions = path_until(problem, lambdas, tolerance, false, limit);
    Some(
        solutions
            .iter()
            .map(|s| {
                let eta = x_test.predict(&s.coef, s.intercept);
                let p: Vec<f64> = eta.iter().map(|&z| sigmoid(z)).collect();
                (metrics::log_loss(&p, &y_test), metrics::auc(&eta, &y_test))
            })
            .collect(),
    )
}

/// Mean, standard error and mean AUC per penalty over the folds `used`, as far as every
/// fold goes (at most `count` penalties).
fn curve(used: Vec<Vec<(f64, f64)>>, count: usize) -> CvCurve {
    let k = used.len().max(1) as f64;
    let mut curve = CvCurve {
        loss: Vec::new(),
        se: Vec::new(),
        auc: Vec::new(),
    };
    for l in 0..count {
        let losses: Vec<f64> = used.iter().filter_map(|f| f.get(l).map(|p| p.0)).collect();
        if losses.len() < used.len() || losses.is_empty() {
            break;
        }
        let mean = losses.iter().sum::<f64>() / k;
        let var = if losses.len() > 1 {
            losses.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0)
        } else {
            0.0
        };
        curve.loss.push(mean);
        curve.se.push((var / k).sqrt());
        curve.auc.push(used.iter().map(|f| f[l].1).sum::<f64>() / k);
    }
    curve
}

/// The one-standard-error rule: the largest penalty (fewest rules) whose cross-validated
/// loss is within one standard error of the best. Returns (best, chosen) indices.
pub fn one_se(curve: &CvCurve) -> Option<(usize, usize)> {
    let best = (0..curve.loss.len()).min_by(|&a, &b| curve.loss[a].total_cmp(&curve.loss[b]))?;
    let limit = curve.loss[best] + curve.se[best];
    let chosen = (0..=best).find(|&i| curve.loss[i] <= limit)?;
    Some((best, chosen))
}

/// How often each column has weight in `count` bootstrap refits at `lambda` (rows drawn
/// with replacement, the same for the same seed), from `start`.
pub fn selection_frequency(
    problem: Problem<'_>,
    lambda: f64,
    start: &Solution,
    count: usize,
    seed: u64,
    tolerance: &Tolerance,
    workers: usize,
) -> Vec<f64> {
    let n = problem.x.rows;
    let mut rng = SplitMix::new(seed ^ 0xB007_5742_u64);
    let draws: Vec<Vec<f64>> = (0..count)
        .map(|_| {
            let mut w = vec![0.0; n];
            for _ in 0..n {
                w[(rng.next_u64() % n.max(1) as u64) as usize] += 1.0;
            }
            w
        })
        .collect();
    let forms = Form::all(problem.x);
    let fits = parallel(&draws, workers, |w| {
        let refit = Problem {
            weights: Some(w),
            ..problem
        };
        fit_with(
            State::with_forms(refit, Cow::Borrowed(&forms)),
            lambda,
            Some(start),
            tolerance,
        )
    });
    let mut freq = vec![0.0; problem.x.cols.len()];
    for fit in &fits {
        for (f, c) in freq.iter_mut().zip(&fit.coef) {
            if *c != 0.0 {
                *f += 1.0;
            }
        }
    }
    freq.iter_mut().for_each(|f| *f /= fits.len().max(1) as f64);
    freq
}

/// Maps `items` on up to `workers` threads, results in the items' order. Each thread
/// takes the next item not yet taken, so that a long item does not hold up the others.
pub(crate) fn parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().map(&f).collect();
    }
    let f = &f;
    let next = &AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(k) else {
                            return done;
                        };
                        done.push((k, f(item)));
                    }
                })
            })
            .collect();
        let mut all: Vec<(usize, R)> = Vec::with_capacity(items.len());
        for handle in handles {
            match handle.join() {
                Ok(done) => all.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all.sort_by_key(|(k, _)| *k);
        all.into_iter().map(|(_, r)| r).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn problem<'a>(x: &'a Columns, y: &'a [bool], excluded: &'a [bool]) -> Problem<'a> {
        Problem {
            x,
            y,
            weights: None,
            excluded,
        }
    }

    /// Rows where a planted column decides the odds and others are noise.
    fn planted(n: usize, p: usize, truth: &[(usize, f64)], seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = SplitMix::new(seed);
        let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let x = Array2::from_shape_fn((n, p), |_| if uniform() < 0.3 { 1.0 } else { 0.0 });
        let y = (0..n)
            .map(|i| {
                let eta = -1.5 + truth.iter().map(|(j, w)| w * x[[i, *j]]).sum::<f64>();
                uniform() < sigmoid(eta)
            })
            .collect();
        (x, y)
    }

    #[test]
    fn with_no_penalty_the_path_ends_at_the_maximum_likelihood_fit() {
        // Two columns, enough rows: at a tiny penalty the weights are the unpenalised
        // logistic regression's, which linfa's L2 fit with a tiny alpha also finds.
        let (x, y) = planted(4_000, 2, &[(0, 1.2), (1, -0.8)], 3);
        let columns = Columns::from_dense(x.view());
        let excluded = [false, false];
        let fit = fit_at(
            problem(&columns, &y, &excluded),
            1e-9,
            None,
            &Tolerance::default(),
        );
        let reference = crate::fit::fit(
            x.view(),
            &y,
            &crate::fit::FitOptions {
                c: 1e9,
                max_iterations: 1_000,
                tolerance: 1e-10,
                ..Default::default()
            },
        )
        .unwrap();
        for j in 0..2 {
            assert!(
                (fit.coef[j] - reference.coef[j]).abs() < 1e-4,
                "{j}: {} vs {}",
                fit.coef[j],
                reference.coef[j]
            );
        }
        assert!((fit.intercept - reference.intercept).abs() < 1e-4);
    }

    #[test]
    fn the_first_penalty_keeps_every_weight_at_zero_and_the_path_adds_the_strongest_first() {
        let (x, y) = planted(3_000, 6, &[(2, 2.0), (4, 0.7)], 5);
        let columns = Columns::from_dense(x.view());
        let excluded = [false; 6];
        let problem = problem(&columns, &y, &excluded);
        let grid = lambdas(problem, 30, 1e-3);
        let solutions = path(problem, &grid, &Tolerance::default(), false);
        assert_eq!(solutions[0].active(), 0);
        let first = solutions.iter().find(|s| s.active() > 0).unwrap();
        assert_eq!(
            first.coef.iter().position(|c| *c != 0.0),
            Some(2),
            "{first:?}"
        );
        // Just below the top penalty the first column enters.
        let below = fit_at(problem, grid[0] * 0.98, None, &Tolerance::default());
        assert_eq!(below.active(), 1);
    }

    #[test]
    fn an_excluded_or_constant_column_never_gets_weight() {
        let (mut x, y) = planted(2_000, 3, &[(0, 2.0), (1, 1.0)], 9);
        x.column_mut(2).fill(1.0);
        let columns = Columns::from_dense(x.view());
        let excluded = [false, true, false];
        let fit = fit_at(
            problem(&columns, &y, &excluded),
            1e-6,
            None,
            &Tolerance::default(),
        );
        assert_ne!(fit.coef[0], 0.0);
        assert_eq!(fit.coef[1], 0.0);
        assert_eq!(fit.coef[2], 0.0);
    }

    #[test]
    fn cross_validation_with_the_one_se_rule_keeps_the_planted_columns_only() {
        let truth = [(3, 1.5), (11, -1.2), (20, 1.0)];
        let (x, y) = planted(5_000, 30, &truth, 21);
        let columns = Columns::from_dense(x.view());
        let excluded = vec![false; 30];
        let problem = problem(&columns, &y, &excluded);
        let grid = lambdas(problem, 40, 1e-3);
        let folds = crate::fit::stratified_splits(&y, 5, 1);
        let curve = cross_validate(
            &columns,
            &y,
            &excluded,
            &folds,
            &grid,
            &Tolerance::default(),
            2,
        );
        let (best, chosen) = one_se(&curve).unwrap();
        assert!(chosen <= best);
        let fit = fit_at(problem, grid[chosen], None, &Tolerance::default());
        let kept: Vec<usize> = (0..30).filter(|&j| fit.coef[j] != 0.0).collect();
        assert_eq!(kept, [3, 11, 20], "{fit:?}");
        assert!(fit.coef[11] < 0.0 && fit.coef[3] > 0.0);
        // The same folds and penalties on one thread give the same curve.
        assert_eq!(
            curve,
            cross_validate(
                &columns,
                &y,
                &excluded,
                &folds,
                &grid,
                &Tolerance::default(),
                1
            )
        );
        let freq =
            selection_frequency(problem, grid[chosen], &fit, 20, 4, &Tolerance::default(), 2);
        for (j, _) in truth {
            assert!(freq[j] >= 0.9, "{j}: {}", freq[j]);
        }
    }

    #[test]
    fn a_warm_start_with_a_wrong_intercept_still_ends_at_the_right_one() {
        // Above the top penalty every weight stays 0; the intercept must still move to
        // the log-odds of the win rate, whatever it started from.
        let (x, y) = planted(2_000, 3, &[(0, 1.0)], 13);
        let columns = Columns::from_dense(x.view());
        let excluded = [false; 3];
        let problem = problem(&columns, &y, &excluded);
        let top = lambdas(problem, 2, 0.5)[0];
        let start = Solution {
            lambda: top,
            coef: vec![0.0; 3],
            intercept: 0.0,
        };
        let fit = fit_at(problem, top * 1.01, Some(&start), &Tolerance::default());
        let rate = y.iter().filter(|w| **w).count() as f64 / y.len() as f64;
        assert_eq!(fit.active(), 0);
        assert!(
            (fit.intercept - (rate / (1.0 - rate)).ln()).abs() < 1e-4,
            "{} vs {}",
            fit.intercept,
            (rate / (1.0 - rate)).ln()
        );
    }

    #[test]
    fn identical_and_complementary_columns_are_found() {
        let x = ndarray::array![
            [1.0, 1.0, 0.0, 1.0],
            [0.0, 0.0, 1.0, 1.0],
            [1.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 1.0],
            [1.0, 1.0, 0.0, 0.0],
        ];
        let columns = Columns::from_dense(x.view());
        let pairs = columns.collinear(0.99, &[false; 4]);
        let found: Vec<(usize, usize)> = pairs.iter().map(|(a, b, _)| (*a, *b)).collect();
        assert_eq!(found, [(1, 0), (2, 0), (2, 1)]);
        assert!(pairs[1].2 < -0.99);
        assert!(columns.collinear(0.99, &[true, false, false, false]).len() == 1);
    }
}
