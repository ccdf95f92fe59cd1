// Reading the config file (see config_file.hpp).
#include "extension/config_file.hpp"

#include "extension/config_text.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hdbrepl::ext::config_detail {

bool looks_like_text(const std::string& s) {
    if (s.find('\n') != std::string::npos) return true;
    const auto first = s.find_first_not_of(" \t\r");
    if (first != std::string::npos && s[first] == '{') return true;
    for (auto pos = s.find("replication"); pos != std::string::npos; pos = s.find("replication", pos + 1)) {
        std::size_t i = pos + 11;
        if (i < s.size() && (s[i] == '"' || s[i] == '\'')) ++i;
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        if (i < s.size() && s[i] == ':') return true;
    }
    return false;
}

std::optional<std::string> read_config_file(const std::string& path, std::string& out) {
    auto failed = [&](const std::string& why) {
        std::string m = "cannot read config file " + quote(path) + ": " + why;
        // A one-line YAML snippet without `replication:` is taken for a path; say so.
        if (path.find(": ") != std::string::npos || path.find(':') == path.size() - 1)
            m += " (inline YAML must contain a 'replication:' section)";
        return m;
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return failed(std::strerror(errno));
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            ::close(fd);
            return failed(std::strerror(err));
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > max_config_bytes) {
            ::close(fd);
            return failed("larger than 1 MiB; is this the right file?");
        }
    }
    ::close(fd);
    return std::nullopt;
}

} // namespace hdbrepl::ext::config_detail
