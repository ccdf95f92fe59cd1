// load_node_config (see config.hpp): decides between inline text and a file path, reads
// the file, runs the YAML walker (config_loader.hpp) and turns every failure, the
// walker's own and any exception from yaml-cpp or the allocator, into a config_error.
// The pieces: config_text (message helpers), config_values (value parsers),
// config_keys (the accepted keys), config_file (reading), config_loader and
// config_sections (the walker).
#include "extension/config.hpp"

#include "extension/config_file.hpp"
#include "extension/config_loader.hpp"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <new>

namespace hdbrepl::ext {

namespace fs = std::filesystem;

std::variant<node_config, config_error> load_node_config(const std::string& text_or_path) {
    using config_detail::load_failure, config_detail::loader, config_detail::looks_like_text,
        config_detail::max_config_bytes, config_detail::read_config_file;
    const std::string usage = "pass the path of a YAML file, or YAML/JSON text with a 'replication:' section";
    try {
        if (text_or_path.find_first_not_of(" \t\r\n") == std::string::npos)
            return config_error{"config is empty: " + usage};
        if (looks_like_text(text_or_path)) {
            if (text_or_path.size() > max_config_bytes) return config_error{"config is larger than 1 MiB"};
            std::error_code ec;
            fs::path cwd = fs::current_path(ec); // on failure relative certificate paths just fail to open
            return loader("", cwd).load(text_or_path);
        }
        std::string text;
        if (auto err = read_config_file(text_or_path, text)) return config_error{*err};
        std::error_code ec;
        fs::path abs = fs::absolute(text_or_path, ec);
        return loader(text_or_path, ec ? fs::path() : abs.parent_path()).load(text);
    } catch (const load_failure& f) {
        return config_error{f.message};
    } catch (const YAML::Exception& e) {
        return config_error{std::string("config: ") + e.what()};
    } catch (const std::bad_alloc&) {
        return config_error{"config: out of memory while reading the configuration"};
    } catch (const std::exception& e) {
        return config_error{std::string("config: ") + e.what()};
    } catch (...) {
        return config_error{"config: unexpected error while reading the configuration"};
    }
}

} // namespace hdbrepl::ext
