// Loading the node configuration that repl_start(config) takes: the `replication:` and `tls:`
// sections of a harperdb-config.yaml, given as a file path or as YAML/JSON text. The loader
// validates the whole document before anything starts, so a node never runs half-configured,
// and fills in every default (replication/node_config.hpp holds the values). docs/config.md
// is the user-facing reference.
#pragma once
#include <cstdint>
#include <string>
#include <variant>

#include "replication/node_config.hpp"

namespace hdbrepl::ext {

// `message` names the key and the line, e.g.
//   replication.routes[1].port (line 7): must be an integer between 1 and 65535, not 'abc'
struct config_error {
    std::string message;
};

// `text_or_path` is YAML or JSON text when it contains a newline, starts with '{', or
// contains "replication" followed by ':'; otherwise it is the path of a YAML file.
// Never throws: every problem, including malformed YAML, comes back as a config_error.
std::variant<node_config, config_error> load_node_config(const std::string& text_or_path);

} // namespace hdbrepl::ext
