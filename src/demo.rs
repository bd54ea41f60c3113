//! Demo (temporary stub while the emulator is built).
pub async fn run(_listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> { Ok(()) }
