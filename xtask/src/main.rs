//! `cargo xtask`: the autodl orchestrator.
//!
//! Wires the stage crates into the pipeline (`run`), and offers the run's model and monitor on
//! new data (`predict`, `monitor`). Library crates never read the environment; this binary is
//! where command-line arguments, the clock and the terminal come in.

mod bench;
mod bench_calibration;
mod bench_data;
mod bench_infer;
mod bench_monitor;
mod bench_serve;
mod chunks;
mod commands;
mod compare;
mod data;
mod machine;
mod maintain;
mod nas;
mod pipeline;
mod progress;
mod report;
mod report_html;
mod studies;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// autodl: hand it a table, get back a trained, exported and monitored model with a report.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The task, when inference from the target should be overridden.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum TaskArg {
    /// Two classes.
    Binary,
    /// Three or more classes.
    Multiclass,
    /// A real-valued target.
    Regression,
}

/// The search strategy.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum StrategyArg {
    /// Regularized (aging) evolution over DAG mutations (population 6, tournaments of 3;
    /// every other trial mutates the best so far while the population fills). The default:
    /// 0.11× random search's evaluations to the NAS table's top 1%; in the pipeline at 120 s it
    /// has beaten random search on MNIST-1D (on one seed set of two on a slower machine), but
    /// not on digits (ARCHITECTURE.md).
    Evolution,
    /// Independent random samples.
    Random,
    /// Tree-structured Parzen Estimator over the architecture and training options
    /// (multivariate over the unconditional choices, as Optuna's default).
    Tpe,
    /// BOHB: Hyperband whose new candidates come from TPE fitted on the scores at the most
    /// epochs that ten trials reached.
    Bohb,
    /// Hyperband: successive halving in a cycle of brackets (9 candidates from 3 epochs, 5
    /// from 9, 3 from 27), continuing promoted trials from their checkpoints.
    Hyperband,
    /// Successive halving with epochs as the fidelity: brackets of 9 trained for 3 epochs,
    /// the best third continued from their checkpoints to 3× the epochs, until one trains to
    /// the end (the conventional defaults train to the end at once).
    Halving,
}

/// What the search optimises.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ObjectiveArg {
    /// Validation accuracy (or the regression metric) alone.
    Accuracy,
    /// Accuracy and parameter count together (Pareto ranks; evolution, TPE and random).
    AccuracyParams,
    /// Accuracy and multiply-adds per prediction, the inference-cost estimate, together.
    AccuracyLatency,
}

/// The data stage's commands.
#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Profile a table: per column its kind (numeric, boolean, categorical, date, free text),
    /// missing share, distinct values, whether it is constant, near-constant or ID-like, its
    /// extreme outliers, and how well it alone predicts the target (a leak check); the task
    /// and class balance; duplicate rows. Prints a table and writes the profile as JSON.
    Profile {
        /// CSV/TSV, Parquet, Arrow IPC or JSON-lines file.
        file: PathBuf,
        /// Target column (default: inferred: a column named target, label, class, y,
        /// outcome or response; else the last column, else the first, passing over
        /// identifiers, constants, dates, free text, model outputs such as y_pred, and time
        /// stamps such as year).
        #[arg(long)]
        target: Option<String>,
        /// A labels file keyed by an identifier column the data shares: joined to the data,
        /// its label column is the default target. A labels file given as the data is joined
        /// to the table beside it that holds its identifiers.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Stream over the file instead of reading it whole, so that files larger than memory
        /// can be profiled (done anyway for files over a quarter of the available memory).
        /// Rows, missing values, numeric summaries, distinct counts and class counts cover
        /// every row; kinds, top categories, outliers, duplicates and the leak check come
        /// from a uniform sample of 100,000 rows.
        #[arg(long)]
        stream: bool,
        /// Where to write the profile (default: runs/profile-<file stem>.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Prepare a table for training: profile, split (stratified for classification), fit the
    /// transform on the training split, and transform every split. Prints the profile and
    /// every cleaning decision with its reason; writes data/profile.json,
    /// data/transform.json and data/{train,valid,test}.parquet under --out.
    Prepare {
        /// CSV/TSV, Parquet, Arrow IPC or JSON-lines file.
        file: PathBuf,
        /// Target column (default: inferred: a column named target, label, class, y,
        /// outcome or response; else the last column, else the first, passing over
        /// identifiers, constants, dates, free text, model outputs such as y_pred, and time
        /// stamps such as year).
        #[arg(long)]
        target: Option<String>,
        /// A labels file keyed by an identifier column the data shares: joined to the data,
        /// its label column is the default target. A labels file given as the data is joined
        /// to the table beside it that holds its identifiers.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Seed of the split.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Keep all rows of a group (one value of this column) in the same split.
        #[arg(long)]
        group_column: Option<String>,
        /// Split by time on this column (dates or numbers): the earliest rows train, the
        /// latest test. Without it, a date column that rises with the row order is used.
        #[arg(long)]
        time_column: Option<String>,
        /// Output directory (default: runs/prepared-<file stem>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Benchmarks against the tools users would otherwise pick.
#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Monitoring: autodl's drift report against Evidently's data-drift preset.
    ///
    /// A seeded table (default 1,000,000 rows × 50 columns: 35 numbers, 15 categories) is
    /// written as two Parquet halves, reference and current, with 7 columns moved in the
    /// current half. Each side, in its own process, reads both, compares every column with
    /// its default tests (autodl: KS or chi-square with Benjamini–Hochberg, plus PSI,
    /// Jensen–Shannon and Wasserstein; Evidently: its DataDriftPreset) and writes its report
    /// as JSON. Prints seconds per phase, columns flagged, peak memory and the ratios. Needs
    /// evidently (with pandas < 3) and pyarrow in ~/.cache/autodl-bench-venv or --python.
    Monitor {
        /// Rows of the generated table (half reference, half current).
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Runs per side (alternating); times are medians.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Python with evidently, pandas and pyarrow (default: the benchmark venv).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Where to write the raw results as JSON.
        #[arg(long, default_value = "runs/bench-monitor.json")]
        out: PathBuf,
    },
    /// Drift monitor calibration: false alarms without drift, and power against a shift.
    ///
    /// Splits the table's rows at random (--splits times) into a current sample of
    /// --current-rows rows and a reference of the rest, fits the transform the pipeline would,
    /// builds the drift reference and runs the monitor's default test (per-column KS or
    /// chi-square, Benjamini–Hochberg across columns, alpha). No split has drift, so every
    /// raised overall flag is a false alarm; the rate is printed with its 95% interval. Then,
    /// for up to --shifted-features numeric columns, the same current sample with that column
    /// moved by --shift reference standard deviations: the share of splits flagging that
    /// column (power) and raising the overall flag.
    Calibration {
        /// The table (default: datasets/mnist1d_train.csv, 4,000 rows × 40 numeric columns).
        #[arg(long, default_value = "datasets/mnist1d_train.csv")]
        data: PathBuf,
        /// Target column (inferred when not given; it is not monitored).
        #[arg(long)]
        target: Option<String>,
        /// Random splits.
        #[arg(long, default_value_t = 200)]
        splits: usize,
        /// Rows of each current sample.
        #[arg(long, default_value_t = 1000)]
        current_rows: usize,
        /// Shift, in reference standard deviations.
        #[arg(long, default_value_t = 0.5)]
        shift: f64,
        /// Numeric columns shifted, one at a time.
        #[arg(long, default_value_t = 5)]
        shifted_features: usize,
        /// Significance level of the adjusted p-values.
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Where to write the raw results as JSON.
        #[arg(long, default_value = "runs/bench-calibration.json")]
        out: PathBuf,
    },
    /// Serving: autodl's server against FastAPI + uvicorn + onnxruntime on the same model.
    ///
    /// Both serve the run's model (with --run; else one trained on datasets/penguins.csv) and
    /// get the same one-row JSON requests (the run's raw test rows) from the same bounded load
    /// generator: a fixed number of keep-alive connections, each sending its next request when
    /// the last is answered. Each concurrency level runs against a freshly started server of
    /// each kind. Prints requests/s, p50 and p99 per level, and the best requests/s with p99
    /// under 10 ms and the ratio. Then a soak run (--soak-secs, 0 skips it) sends valid and
    /// malformed requests to autodl's server and prints the statuses by kind, the 5xx count and
    /// the server's memory over time. Needs fastapi, uvicorn and onnxruntime in
    /// ~/.cache/autodl-bench-venv (scripts/bench-venv.sh) or --python.
    Serve {
        /// A run directory to serve.
        #[arg(long)]
        run: Option<PathBuf>,
        /// Connections per level (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
        concurrency: Vec<usize>,
        /// Seconds per level and server.
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Seconds of the soak run of valid and malformed requests (0 skips it).
        #[arg(long, default_value_t = 60.0)]
        soak_secs: f64,
        /// Python with fastapi, uvicorn and onnxruntime.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Where to write the raw results.
        #[arg(long, default_value = "runs/bench-serve.json")]
        out: PathBuf,
    },
    /// Inference: tract against onnxruntime (Python) on the same .onnx files, one thread each.
    ///
    /// Batch-1 latency (median and 99th percentile of single-row calls) and batch-1024
    /// throughput, with the same protocol on both sides (scripts/bench_infer.py), in alternating
    /// rounds; prints the medians and the ratios. Measures a run's model.onnx with --run, else
    /// the search space's default MLP and CNN for 8×8 images. Needs onnxruntime in
    /// ~/.cache/autodl-bench-venv (scripts/bench-venv.sh) or --python.
    Infer {
        /// A run directory whose model.onnx is measured.
        #[arg(long)]
        run: Option<PathBuf>,
        /// Threads per runtime (tract runs one).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Single-row calls timed per round.
        #[arg(long, default_value_t = 5000)]
        singles: usize,
        /// 1,024-row calls timed per round.
        #[arg(long, default_value_t = 100)]
        batches: usize,
        /// Rounds per side (alternating).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Python with onnxruntime.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Where to write the raw results.
        #[arg(long, default_value = "runs/bench-infer.json")]
        out: PathBuf,
    },
    /// Data stage: autodl against pandas + scikit-learn on a generated table.
    ///
    /// A seeded table (default 1,000,000 rows × 50 columns: numbers with missing values and
    /// outliers, categories of 2 to 1,000 levels, dates as text, booleans, a binary target) is
    /// written as Parquet; each side reads it, profiles it, splits it, fits its transform on
    /// the training split and transforms every split, in its own process. pandas +
    /// scikit-learn use SimpleImputer, StandardScaler and OneHotEncoder in a
    /// ColumnTransformer. Prints seconds per phase, peak memory and the ratios. Needs pandas,
    /// scikit-learn and pyarrow in ~/.cache/autodl-bench-venv (scripts/bench-venv.sh) or
    /// --python.
    Data {
        /// Rows of the generated table.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Runs per side (alternating); times are medians.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Python with pandas, scikit-learn and pyarrow (default: the benchmark venv).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Where to write the raw results as JSON.
        #[arg(long, default_value = "runs/bench-data.json")]
        out: PathBuf,
    },
    /// Training speed: autodl's trainer against PyTorch on the same MLP.
    ///
    /// 64 → 256 → 256 → 10 (ReLU), AdamW, cross-entropy, the same generated data and batch
    /// size, one thread each, each side in its own process, alternating. Prints samples per
    /// second (median over repeats), the ratio, and each side's peak resident memory. Needs
    /// PyTorch in ~/.cache/autodl-bench-venv (scripts/bench-venv.sh installs it) or --python.
    Train {
        /// Training rows.
        #[arg(long, default_value_t = 8192)]
        rows: usize,
        /// Epochs per measurement.
        #[arg(long, default_value_t = 5)]
        epochs: usize,
        /// Batch size.
        #[arg(long, default_value_t = 128)]
        batch: usize,
        /// Alternating repeats of each side (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Python with torch and numpy (default: the benchmark venv).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Where to write the raw results as JSON.
        #[arg(long, default_value = "runs/bench-train.json")]
        out: PathBuf,
    },
    /// Search: autodl's TPE sampler against Optuna's on Branin, Hartmann-6 and the NAS table.
    ///
    /// Same number of trials and of seeds; each sampler with its own defaults (both start with
    /// 10 random trials; Optuna draws 24 candidates per proposal, autodl 48 and skips
    /// candidates already tried). Prints median best-so-far regret curves, final regrets
    /// (median, mean, seeds that reached the optimum), and each sampler's overhead per trial.
    /// Needs Optuna in ~/.cache/autodl-bench-venv (scripts/bench-venv.sh) or --python.
    Search {
        /// Trials per seed.
        #[arg(long, default_value_t = 100)]
        trials: usize,
        /// Seeds (independent runs) per sampler.
        #[arg(long, default_value_t = 100)]
        seeds: usize,
        /// Python with optuna (default: the benchmark venv).
        #[arg(long)]
        python: Option<PathBuf>,
        /// The NAS table, the third objective (`none` to skip it).
        #[arg(long, default_value = "bench/nas-table.json")]
        nas_table: PathBuf,
        /// Candidates drawn from l(x) per proposal by autodl's TPE (default: its own default).
        #[arg(long)]
        ei_candidates: Option<usize>,
        /// Where to write the raw results as JSON.
        #[arg(long, default_value = "runs/bench-search.json")]
        out: PathBuf,
    },
    /// Builds the NAS table: every distinct network of the cell space trained once.
    ///
    /// The space: NAS-Bench-201-style cells (4 nodes; each of 6 edges none, skip, 3-wide
    /// convolution or 3-wide average pooling) in a fixed skeleton (stem convolution, cell,
    /// convolution with 2× max pooling, cell, global average pooling). Of 4,096 cells 3,927
    /// are connected and they compute 1,065 different networks, each trained with the same
    /// seed and options for exactly --epochs epochs. Writes validation accuracy per epoch,
    /// test accuracy, parameters and multiply-adds per network, and how the table was made.
    NasTable {
        /// Training file (validation is split from it).
        #[arg(long, default_value = "datasets/mnist1d_train.csv")]
        data: PathBuf,
        /// Test file.
        #[arg(long, default_value = "datasets/mnist1d_test.csv")]
        test: PathBuf,
        /// Target column (classification).
        #[arg(long, default_value = "label")]
        target: String,
        /// Channels of the first stage (the second has twice as many).
        #[arg(long, default_value_t = 8)]
        channels: usize,
        /// Epochs per network.
        #[arg(long, default_value_t = 6)]
        epochs: usize,
        /// Training rows used (a random subset of the training split), at most.
        #[arg(long, default_value_t = 1200)]
        train_rows: usize,
        /// Seed of the split and of every network's training.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Networks trained in parallel (one thread each).
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Train only the first N networks (a partial table, for trying settings).
        #[arg(long)]
        limit: Option<usize>,
        /// Where to write the table.
        #[arg(long, default_value = "bench/nas-table.json")]
        out: PathBuf,
    },
    /// Trials per second with 1, 2 and 4 worker processes sharing one study.
    ///
    /// Each worker is a separate process running `search worker` on Hartmann-6 with an extra
    /// cost per trial (busy computation, or waiting); checks that every study ends with
    /// exactly its number of complete trials.
    Workers(studies::WorkersBenchArgs),
    /// Strategies compared on the NAS table (lookups instead of training).
    ///
    /// Random search, regularized evolution, TPE, successive halving, Hyperband and BOHB, each
    /// over --seeds seeds with a budget of --evaluations full trainings (multi-fidelity
    /// strategies pay for the epochs they use). Prints the median number of full trainings
    /// until the incumbent is in the table's top 1%, and median regret curves.
    Nas {
        /// The table (from `cargo xtask bench nas-table`).
        #[arg(long, default_value = "bench/nas-table.json")]
        table: PathBuf,
        /// Independent runs per strategy.
        #[arg(long, default_value_t = 20)]
        seeds: usize,
        /// Budget per run, in full trainings.
        #[arg(long, default_value_t = 300)]
        evaluations: usize,
        /// Where to write the raw results as JSON.
        #[arg(long, default_value = "runs/bench-nas.json")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmarks against peers: pandas + scikit-learn (data), PyTorch (training), Optuna (search),
    /// onnxruntime and FastAPI (deployment), Evidently (monitoring), and the drift calibration.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// The data stage on its own: profile a table, or prepare it for training.
    Data {
        #[command(subcommand)]
        what: DataCommand,
    },
    /// Searches shared by many worker processes (on one machine or many) through one study in
    /// Optuna's journal format: a file, or a Redis server.
    Search {
        #[command(subcommand)]
        what: studies::SearchCommand,
    },
    /// One autodl side of `bench monitor`, in its own process (used by the benchmark).
    #[command(hide = true)]
    BenchMonitorWorker {
        #[arg(long)]
        reference: PathBuf,
        #[arg(long)]
        current: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// One autodl side of `bench data`, in its own process (used by the benchmark).
    #[command(hide = true)]
    BenchDataWorker {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        target: String,
    },
    /// One autodl side of `bench train`, in its own process (used by the benchmark).
    #[command(hide = true)]
    BenchWorker {
        #[arg(long)]
        x: PathBuf,
        #[arg(long)]
        y: PathBuf,
        #[arg(long)]
        epochs: usize,
        #[arg(long)]
        batch: usize,
    },
    /// Run the whole pipeline on a table (default: the embedded digits dataset).
    ///
    /// Profiles and prepares the data, searches and trains networks, exports to ONNX (checked
    /// against tract), builds the drift reference, scores the ten criteria and writes a report
    /// into the run directory.
    Run {
        /// CSV or Parquet file (default: the embedded digits dataset, target `digit`).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Target column (default: `digit` for the embedded data; else inferred as by
        /// `cargo xtask data profile`: a column named target, label, class, y, outcome or
        /// response, else the last column, else the first, passing over identifiers,
        /// constants, dates, free text, model outputs and time stamps).
        #[arg(long)]
        target: Option<String>,
        /// A labels file keyed by an identifier column the data shares: joined to the data,
        /// its label column is the default target.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// A separate test file with the same columns: the test metric is measured on it, and
        /// --data is split into training and validation only.
        #[arg(long)]
        test: Option<PathBuf>,
        /// Force the task instead of inferring it from the target.
        #[arg(long, value_enum)]
        task: Option<TaskArg>,
        /// Keep all rows of a group (one value of this column) in the same split.
        #[arg(long)]
        group_column: Option<String>,
        /// Split by time on this column (dates or numbers): the earliest rows train, the
        /// latest test. Without it, a date column that rises with the row order is used.
        #[arg(long)]
        time_column: Option<String>,
        /// Run directory (default: runs/<dataset>-<unix time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds the architecture search may take.
        #[arg(long, default_value_t = 120.0)]
        budget_secs: f64,
        /// Stop the search after this many trials (makes runs repeatable across machines).
        #[arg(long)]
        max_trials: Option<u32>,
        /// Seed for splits, search and training.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Search strategy.
        #[arg(long, value_enum, default_value_t = StrategyArg::Evolution)]
        strategy: StrategyArg,
        /// What to optimise; with two objectives the report shows the Pareto front found
        /// (the final model is still the most accurate).
        #[arg(long, value_enum, default_value_t = ObjectiveArg::Accuracy)]
        objective: ObjectiveArg,
        /// Grid carbon intensity for the eco-friendliness criterion, g CO2e per kWh.
        #[arg(long, default_value_t = autodl_criteria::DEFAULT_GRID_G_PER_KWH)]
        grid_g_per_kwh: f64,
        /// Runs in all, for the stability criterion: after this one, the whole run is repeated
        /// with the next seeds (each in <run>/repeats/), and the spread of the test metric is
        /// reported. Multiplies the time taken.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        repeats: u64,
        /// Repeat the whole run with the same seed and settings (into <run>/reproduce) and
        /// compare every trial record (clock readings left out) and the final weights, for the
        /// reproducibility criterion. Doubles the time taken; give --max-trials for a search
        /// that a deadline cannot cut at different points.
        #[arg(long)]
        check_reproducibility: bool,
    },
    /// Predict raw rows with a run's exported model.
    ///
    /// Applies the run's fitted transform, then the ONNX graph (with tract). Writes CSV: the
    /// prediction, then one probability column per class for classification. The file is
    /// streamed (CSV and JSON lines in pieces of about 64 MB, Parquet 500,000 rows at a time),
    /// so it may be larger than memory. If the file has the target column, it is copied into
    /// the output as its first column (so that errors can be found row by row) and the metric
    /// is printed.
    Predict {
        /// Run directory written by `cargo xtask run`.
        #[arg(long)]
        run: PathBuf,
        /// CSV or Parquet file with the model's input columns.
        #[arg(long)]
        data: PathBuf,
        /// Output CSV (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Size of the pieces the file is read in, in MB (memory use grows with it).
        #[arg(long, default_value_t = 64.0)]
        piece_mb: f64,
    },
    /// Serve a run's model over HTTP until Ctrl-C or SIGTERM (then finish what is in flight).
    ///
    /// POST /predict takes rows keyed by column name as JSON (`[{"col": value, ...}]`,
    /// `{"rows": [...]}` or one object) or CSV with a header (Content-Type: text/csv) and
    /// answers predictions with class probabilities (or values). GET /health, GET /metadata
    /// (inputs, output, task, the input policy) and GET /metrics (Prometheus). Malformed bodies
    /// get 400, missing columns and wrong types 422 (with row and column), oversized bodies
    /// 413; extra columns are ignored, nulls imputed. Requests queued together run as one batch.
    Serve {
        /// Run directory written by `cargo xtask run`.
        #[arg(long)]
        run: PathBuf,
        /// Address to bind (loopback by default; port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// File holding a bearer token every endpoint but /health then requires (the
        /// AUTODL_SERVE_TOKEN environment variable works too; a file keeps it out of `ps`).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Largest request body, in bytes.
        #[arg(long, default_value_t = 8 << 20)]
        max_body_bytes: usize,
        /// Threads running the network.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Most rows run through the network at once.
        #[arg(long, default_value_t = 1024)]
        max_batch_rows: usize,
    },
    /// Writes the run's report as one self-contained HTML file (report.html).
    ///
    /// The Markdown report rendered, then plots drawn as inline SVG from the run's artifacts:
    /// search progress, learning curves, the confusion matrix (or residuals) on the test split,
    /// permutation importance, the ten criteria, and any monitoring plots under <run>/monitor.
    /// With --screenshot, headless Chromium renders it into a PNG and any console error fails
    /// the command (scripts/chromium.sh installs Chromium from Debian).
    Report {
        /// Run directory written by `cargo xtask run`.
        #[arg(long)]
        run: PathBuf,
        /// Render the report in headless Chromium into this PNG.
        #[arg(long)]
        screenshot: Option<PathBuf>,
    },
    /// Runs side by side: data, seed, test metric, baseline, time, and the ten criteria.
    ///
    /// Reads each run's manifest.json and criteria.json and prints one Markdown table with a
    /// column per run.
    Compare {
        /// Run directories (two or more).
        #[arg(required = true, num_args = 2..)]
        runs: Vec<PathBuf>,
        /// Also write the table to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check new data for drift against a run's training data or a reference table, whole or
    /// in chunks (with performance estimates and streaming detectors), and keep the model
    /// current (--retrain-on-drift).
    ///
    /// Feature by feature: Kolmogorov–Smirnov (numeric) or chi-square (categorical) with
    /// Benjamini–Hochberg correction, plus PSI, Jensen–Shannon and Wasserstein. Prints a table
    /// and writes a JSON report; in chunks (--chunk-size or --chunk-period) also Markdown
    /// tables and an SVG plot beside it. With a run and labelled rows, the model's score on
    /// them is kept too.
    Monitor {
        /// Run directory written by `cargo xtask run`: its drift reference (the training rows).
        #[arg(
            long,
            required_unless_present = "reference",
            conflicts_with = "reference"
        )]
        run: Option<PathBuf>,
        /// A reference table instead of a run (a period known to be good): every column but
        /// the target, the probability, the id and the timestamp is monitored, numeric where
        /// stored as numbers, categorical otherwise.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// With --reference: monitor only these columns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// CSV or Parquet file with the model's input columns.
        #[arg(long)]
        data: PathBuf,
        /// Significance level of the adjusted p-values.
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Analyse the data in chunks of this many consecutive rows (one report per chunk).
        #[arg(long, conflicts_with = "chunk_period")]
        chunk_size: Option<usize>,
        /// Analyse the data in calendar periods of --timestamp instead (rows in time order).
        #[arg(long, value_enum, requires = "timestamp")]
        chunk_period: Option<chunks::Period>,
        /// A timestamp column: each chunk's first and last value are shown.
        #[arg(long)]
        timestamp: Option<String>,
        /// A column with the model's probability of the positive class, in the reference and
        /// the data: accuracy is estimated per chunk without labels (CBPE-style, calibrated
        /// on the reference), and realised where labels are known. Needs --reference,
        /// --target and --chunk-size.
        #[arg(long, requires_all = ["target", "reference"])]
        proba: Option<String>,
        /// A column with the model's hard prediction (0/1) beside --proba; without it a row is
        /// predicted positive when its probability is at least 0.5.
        #[arg(long, requires = "proba")]
        pred: Option<String>,
        /// The binary target (0/1 or true/false) in the reference, and in the data or --labels.
        #[arg(long)]
        target: Option<String>,
        /// Labels that arrived later: a table with --id and --target columns.
        #[arg(long, requires = "id")]
        labels: Option<PathBuf>,
        /// The column joining the data and --labels.
        #[arg(long)]
        id: Option<String>,
        /// Also test each chunk's joint distribution against the reference rows: maximum mean
        /// discrepancy (permutation p-value) and a domain classifier (cross-validated AUC and
        /// the columns driving it), on up to 500 rows a side. Needs --reference.
        #[arg(long, requires = "reference")]
        multivariate: bool,
        /// The maintenance loop (needs --run): when drift is found, or the model's metric on
        /// the labelled new rows confirms a drop (bootstrap 95% interval), retrain on the run's
        /// training file plus half the labelled new rows, score both models on the other half,
        /// keep both runs (under <run>/maintenance/) and promote the better in
        /// <run>/promoted.json. Labels come from the data's target column or --labels/--id.
        #[arg(long, requires = "run", conflicts_with_all = ["chunk_size", "chunk_period", "reference"])]
        retrain_on_drift: bool,
        /// Search budget of the retraining, in seconds.
        #[arg(long, default_value_t = 60.0)]
        retrain_budget_secs: f64,
        /// Where to write the JSON report (default: <run>/monitor/report-<file stem>.json, or
        /// runs/monitor/report-<file stem>.json with --reference).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Exit with status 3 when drift is detected.
        #[arg(long)]
        fail_on_drift: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Search {
            what: studies::SearchCommand::Worker(args),
        } => studies::worker(&args).map(|_| ExitCode::SUCCESS),
        Command::Search {
            what: studies::SearchCommand::Show(args),
        } => studies::show(&args).map(|_| ExitCode::SUCCESS),
        Command::Bench {
            what: BenchCommand::Workers(args),
        } => studies::bench_workers(&args).map(|_| ExitCode::SUCCESS),
        Command::Bench {
            what:
                BenchCommand::Data {
                    rows,
                    repeats,
                    python,
                    out,
                },
        } => bench_data::run(&bench_data::DataBenchArgs {
            rows,
            repeats,
            python,
            out,
        })
        .map(|_| ExitCode::SUCCESS),
        Command::Bench {
            what:
                BenchCommand::Monitor {
                    rows,
                    repeats,
                    python,
                    out,
                },
        } => bench_monitor::run(&bench_monitor::MonitorBenchArgs {
            rows,
            repeats,
            python,
            out,
        })
        .map(|_| ExitCode::SUCCESS),
        Command::Bench {
            what:
                BenchCommand::Calibration {
                    data,
                    target,
                    splits,
                    current_rows,
                    shift,
                    shifted_features,
                    alpha,
                    out,
                },
        } => bench_calibration::calibration(&bench_calibration::CalibrationArgs {
            data,
            target,
            splits,
            current_rows,
            shift,
            shifted_features,
            alpha,
            out,
        })
        .map(|_| ExitCode::SUCCESS),
        Command::Bench {
            what:
                BenchCommand::Infer {
                    run,
                    threads,
                    singles,
                    batches,
                    repeats,
                    python,
                    out,
                },
        } => bench_infer::infer(&bench_infer::InferBenchArgs {
            run,
            threads,
            singles,
            batches,
            repeats,
            python,
            out,
        })
        .map(|_| ExitCode::SUCCESS),
        Command::Bench {
            what:
                BenchCommand::Serve {
                    run,
                    concurrency,
                    secs,
                    soak_secs,
                    python,
                    out,
                },
        } => bench_serve::serve(&bench_serve::ServeBenchArgs {
            run,
            concurrency,
            secs,
            soak_secs,
            python,
            out,
        })
        .map(|_| ExitCode::SUCCESS),
        Command::Report { run, screenshot } => (|| -> anyhow::Result<ExitCode> {
            let html = report_html::write(&run)?;
            eprintln!("report written to {}", html.display());
            if let Some(png) = screenshot {
                let errors = report_html::screenshot(&html, &png)?;
                if !errors.is_empty() {
                    anyhow::bail!("the browser reported errors:\n{}", errors.join("\n"));
                }
                eprintln!("rendered without console errors: {}", png.display());
            }
            Ok(ExitCode::SUCCESS)
        })(),
        Command::Compare { runs, out } => {
            compare::run(&runs, out.as_deref()).map(|_| ExitCode::SUCCESS)
        }
        Command::BenchMonitorWorker {
            reference,
            current,
            out,
        } => bench_monitor::worker(&reference, &current, &out).map(|_| ExitCode::SUCCESS),
        Command::BenchDataWorker { file, target } => {
            bench_data::worker(&file, &target).map(|_| ExitCode::SUCCESS)
        }
        Command::Data {
            what:
                DataCommand::Profile {
                    file,
                    target,
                    labels,
                    stream,
                    out,
                },
        } => {
            let out = out.unwrap_or_else(|| data::default_out(&file, "profile-", ".json"));
            data::profile(&file, target, labels.as_deref(), stream, &out).map(|_| ExitCode::SUCCESS)
        }
        Command::Data {
            what:
                DataCommand::Prepare {
                    file,
                    target,
                    labels,
                    seed,
                    group_column,
                    time_column,
                    out,
                },
        } => {
            let out = out.unwrap_or_else(|| data::default_out(&file, "prepared-", ""));
            let labels = labels.as_deref();
            data::prepare(
                &file,
                target,
                labels,
                seed,
                (group_column, time_column),
                &out,
            )
            .map(|_| ExitCode::SUCCESS)
        }
        Command::Bench {
            what:
                BenchCommand::Train {
                    rows,
                    epochs,
                    batch,
                    repeats,
                    python,
                    out,
                },
        } => bench::train(&bench::TrainBenchArgs {
            rows,
            epochs,
            batch,
            repeats,
            python,
            out,
        })
        .map(|_| ExitCode::SUCCESS),
        Command::Bench {
            what:
                BenchCommand::Search {
                    trials,
                    seeds,
                    python,
                    nas_table,
                    ei_candidates,
                    out,
                },
        } => bench::search(&bench::SearchBenchArgs {
            trials,
            seeds,
            python,
            nas_table: (nas_table.as_os_str() != "none").then_some(nas_table),
            ei_candidates,
            out,
        })
        .map(|_| ExitCode::SUCCESS),
        Command::Bench {
            what:
                BenchCommand::NasTable {
                    data,
                    test,
                    target,
                    channels,
                    epochs,
                    train_rows,
                    seed,
                    jobs,
                    limit,
                    out,
                },
        } => nas::generate(&nas::TableArgs {
            data,
            test,
            target,
            channels,
            epochs,
            train_rows,
            seed,
            jobs,
            limit,
            out,
        })
        .map(|_| ExitCode::SUCCESS),
        Command::Bench {
            what:
                BenchCommand::Nas {
                    table,
                    seeds,
                    evaluations,
                    out,
                },
        } => nas::bench(&nas::NasBenchArgs {
            table,
            seeds,
            evaluations,
            out,
        })
        .map(|_| ExitCode::SUCCESS),
        Command::BenchWorker {
            x,
            y,
            epochs,
            batch,
        } => bench::worker(&x, &y, epochs, batch).map(|_| ExitCode::SUCCESS),
        Command::Run {
            data,
            target,
            labels,
            test,
            task,
            group_column,
            time_column,
            out,
            budget_secs,
            max_trials,
            seed,
            strategy,
            objective,
            grid_g_per_kwh,
            repeats,
            check_reproducibility,
        } => pipeline::run(pipeline::RunArgs {
            data,
            target,
            labels,
            test,
            task: task.map(|t| match t {
                TaskArg::Binary => autodl_artifacts::table::Task::Binary,
                TaskArg::Multiclass => autodl_artifacts::table::Task::Multiclass,
                TaskArg::Regression => autodl_artifacts::table::Task::Regression,
            }),
            group_column,
            time_column,
            out,
            budget_secs,
            max_trials,
            seed,
            strategy: match strategy {
                StrategyArg::Evolution => autodl_search::Strategy::default_evolution(),
                StrategyArg::Random => autodl_search::Strategy::Random,
                StrategyArg::Halving => autodl_search::Strategy::default_halving(),
                StrategyArg::Tpe => autodl_search::Strategy::default_tpe(),
                StrategyArg::Bohb => autodl_search::Strategy::default_bohb(),
                StrategyArg::Hyperband => autodl_search::Strategy::default_hyperband(),
            },
            objective: match objective {
                ObjectiveArg::Accuracy => autodl_search::Objective::Score,
                ObjectiveArg::AccuracyParams => autodl_search::Objective::ScoreAndParameters,
                ObjectiveArg::AccuracyLatency => autodl_search::Objective::ScoreAndMacs,
            },
            grid_g_per_kwh,
            repeats: repeats as usize,
            check_reproducibility,
        })
        .map(|_| ExitCode::SUCCESS),
        Command::Serve {
            run,
            addr,
            token_file,
            max_body_bytes,
            workers,
            max_batch_rows,
        } => commands::serve(
            &run,
            token_file.as_deref(),
            autodl_deploy::ServeConfig {
                addr,
                max_body_bytes,
                workers,
                max_batch_rows,
                ..Default::default()
            },
        )
        .map(|_| ExitCode::SUCCESS),
        Command::Predict {
            run,
            data,
            out,
            piece_mb,
        } => commands::predict(&run, &data, out.as_deref(), piece_mb).map(|_| ExitCode::SUCCESS),
        Command::Monitor {
            run: Some(run),
            data,
            alpha,
            labels,
            retrain_on_drift: true,
            retrain_budget_secs,
            fail_on_drift,
            ..
        } => maintain::run(&maintain::MaintainArgs {
            run,
            data,
            labels,
            alpha,
            budget_secs: retrain_budget_secs,
        })
        .map(|drift| {
            if drift && fail_on_drift {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }),
        Command::Monitor {
            run,
            reference,
            columns,
            data,
            alpha,
            chunk_size,
            chunk_period,
            timestamp,
            proba,
            pred,
            target,
            labels,
            id,
            multivariate,
            out,
            fail_on_drift,
            ..
        } => commands::monitor(&commands::MonitorArgs {
            run,
            reference,
            columns,
            data,
            alpha,
            chunk_size,
            chunk_period,
            timestamp,
            performance: proba.map(|proba| chunks::PerformanceArgs {
                proba,
                pred,
                target: target.unwrap_or_default(),
                labels,
                id,
            }),
            multivariate,
            out,
        })
        .map(|drift| {
            if drift && fail_on_drift {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line, the whole chain of causes, no backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
