// Private key files (see key_files.hpp).
#include "security/key_files.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hdbrepl::ext {

namespace {
std::string safe_name(const std::string& name) {
    std::string out;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
        out += ok ? c : '_';
    }
    if (out.empty() || out[0] == '.') out = "_" + out;
    return out;
}

std::string errno_text() { return std::strerror(errno); }
} // namespace

std::string key_dir_for(const std::string& db_path) { return db_path + "-keys"; }

std::string write_key_file(const std::string& db_path, const std::string& name, const std::string& pem, std::string& path) {
    const std::string dir = key_dir_for(db_path);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return "cannot create the key directory " + dir + ": " + errno_text();
    ::chmod(dir.c_str(), 0700); // an existing directory is tightened too
    path = dir + "/" + safe_name(name) + ".pem";
    const std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return "cannot write " + tmp + ": " + errno_text();
    ::fchmod(fd, 0600);
    std::size_t done = 0;
    while (done < pem.size()) {
        ssize_t n = ::write(fd, pem.data() + done, pem.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            std::string e = errno_text();
            ::close(fd);
            ::unlink(tmp.c_str());
            return "cannot write " + tmp + ": " + e;
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        ::unlink(tmp.c_str());
        return "cannot write " + tmp + ": " + errno_text();
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        return "cannot rename " + tmp + ": " + errno_text();
    }
    return "";
}

std::string read_pem_file(const std::string& path, std::string& out) {
    out.clear();
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return "cannot read " + path + ": " + errno_text();
    char buf[8192];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        out.append(buf, n);
        if (out.size() > (1u << 20)) {
            std::fclose(f);
            return path + " is larger than 1 MiB: not a PEM file";
        }
    }
    bool bad = std::ferror(f) != 0;
    std::fclose(f);
    if (bad) return "cannot read " + path;
    return "";
}

void remove_key_file(const std::string& db_path, const std::string& path) {
    const std::string dir = key_dir_for(db_path) + "/";
    if (path.compare(0, dir.size(), dir) == 0) ::unlink(path.c_str());
}

} // namespace hdbrepl::ext
