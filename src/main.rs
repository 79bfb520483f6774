fn main() -> std::process::ExitCode {
    sagaflow::cli::main()
}
