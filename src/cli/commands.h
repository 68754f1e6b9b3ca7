// The subcommands of the hearth CLI. Each registers its flags on a CLI11 app and
// returns the function that runs it; main.cpp dispatches and turns errors into one line
// on stderr and exit code 1.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace hearth::cli {

using Command = std::function<int()>;

Command add_info(CLI::App& app);
Command add_run(CLI::App& app);
Command add_make_model(CLI::App& app);
Command add_chat(CLI::App& app);
Command add_batch(CLI::App& app);
Command add_bench(CLI::App& app);
// The endpoint and report subcommands of bench, registered by add_bench (cmd_bench_endpoint.cpp).
Command add_bench_endpoint(CLI::App& sub);
Command add_bench_report(CLI::App& sub);
Command add_serve(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_detokenize(CLI::App& app);
Command add_chat_template(CLI::App& app);
Command add_perplexity(CLI::App& app);

}  // namespace hearth::cli
