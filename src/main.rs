use std::io::IsTerminal;
use std::process::ExitCode;

use authgraph::config::{Cli, Command, ConfigError, KeysCommand, LogFormat, Settings};
use clap::Parser;
use clap::error::ErrorKind;
use tracing_subscriber::EnvFilter;

/// Exit code for a bad setting (API.md).
const BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    if let Err(err) = dotenvy::dotenv()
        && !err.not_found()
    {
        eprintln!("error: .env: {}", describe_dotenv_error(&err));
        return ExitCode::from(BAD_CONFIG);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            err.exit()
        }
        Err(err) => {
            eprintln!("{}", one_line(&err));
            return ExitCode::from(BAD_CONFIG);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Schema = command {
        print!("{}", authgraph::graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let settings = cli.settings;
    if let Err(err) = init_tracing(&settings) {
        return fail(&err);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The work runs as a spawned task, on a runtime worker: under `block_on` it
    // would run on the main thread, and every accepted connection would be a
    // wake-up across threads.
    let work = runtime.spawn(async move {
        match command {
            Command::Migrate => match authgraph::app::open_store(&settings).await {
                Ok(_) => {
                    tracing::info!("migrations applied");
                    ExitCode::SUCCESS
                }
                Err(err) => fail(&err),
            },
            Command::Promote { user } => promote(&settings, &user).await,
            Command::Keys { command } => keys(&settings, &command),
            Command::GatewayConfig { consumer } => gateway_config(&settings, consumer),
            Command::Serve | Command::Schema => serve(&settings).await,
        }
    });
    runtime.block_on(work).unwrap_or_else(|err| {
        eprintln!("error: {err}");
        ExitCode::FAILURE
    })
}

/// clap's error on one line: its first line names the setting (the rest is
/// tips), and a choice setting's good values follow it.
fn one_line(err: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = err.render().to_string();
    let first = text.lines().next().unwrap_or("error: bad arguments");
    match err.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(values)) if !values.is_empty() => {
            format!("{first}: one of {}", values.join(", "))
        }
        _ => first.to_owned(),
    }
}

async fn serve(settings: &Settings) -> ExitCode {
    let app = match authgraph::app::build(settings).await {
        Ok(app) => app,
        Err(err) => return fail(&err),
    };
    match app.run(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            ExitCode::FAILURE
        }
    }
}

async fn promote(settings: &Settings, who: &str) -> ExitCode {
    match authgraph::app::promote(settings, who).await {
        Ok(user) => {
            println!(
                "{} <{}> id={} role=ADMIN",
                user.username, user.email, user.id
            );
            ExitCode::SUCCESS
        }
        Err(authgraph::app::PromoteError::Config(err)) => fail(&err),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `authgraph gateway-config CONSUMER`: the configuration on stdout (exit 0),
/// warnings on stderr; exit 1 when nothing can be written for it.
fn gateway_config(settings: &Settings, consumer: authgraph::config::Consumer) -> ExitCode {
    match authgraph::gateway::generate(settings, consumer) {
        Ok(generated) => {
            for warning in &generated.warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", generated.text);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `authgraph keys generate|list`: exit 0, or 1 with one line (2 for a bad setting).
fn keys(settings: &Settings, command: &KeysCommand) -> ExitCode {
    let done = match command {
        KeysCommand::Generate { algorithm, out } => authgraph::app::generate_key(*algorithm, out)
            .map(|kid| {
                vec![format!(
                    "{}: a new {} key, kid {kid}",
                    out.display(),
                    algorithm.as_str()
                )]
            }),
        KeysCommand::List => authgraph::app::list_keys(settings),
    };
    match done {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(authgraph::app::KeysError::Config(err)) => fail(&err),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// dotenvy quotes a bad line verbatim, and the line may hold a secret: name it
/// by its number instead.
fn describe_dotenv_error(err: &dotenvy::Error) -> String {
    match err {
        dotenvy::Error::LineParse(line, _) => {
            let number = std::fs::read_to_string(".env")
                .ok()
                .and_then(|text| bad_line_number(&text, line));
            match number {
                Some(n) => format!("line {} is not KEY=VALUE (its content is not shown)", n + 1),
                None => "a line is not KEY=VALUE (its content is not shown)".to_owned(),
            }
        }
        dotenvy::Error::Io(io) => io.to_string(),
        _ => "cannot be read".to_owned(),
    }
}

/// The index of the line of `text` where dotenvy's unparsable `bad` starts.
/// `bad` may run on over later lines (an unclosed quote), so it is matched by
/// its first line; a blank line is never it (every text starts with "").
fn bad_line_number(text: &str, bad: &str) -> Option<usize> {
    let first = bad.lines().next()?.trim();
    if first.is_empty() {
        return None;
    }
    text.lines().position(|l| l.trim() == first)
}

fn fail(err: &ConfigError) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(BAD_CONFIG)
}

fn init_tracing(settings: &Settings) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(&settings.server.rust_log)
        .map_err(|err| ConfigError::new("RUST_LOG", err.to_string()))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.server.log_format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // For collectors: every event lists the spans it ran in, and each
        // span logs a line with its timing when it closes (the `request`
        // span's is an access log line; the operation's and the database
        // calls' show at `debug`).
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .init(),
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
