// Private keys live in files, never in the database: in the directory "<database>-keys"
// beside the database file (mode 0700), one "<name>.pem" per key (mode 0600), written
// atomically (temporary file, fsync, rename). A configured tls.privateKey stays where the
// operator put it and is only read. Thread: any.
#pragma once
#include <string>

namespace hdbrepl::ext {

// The key directory of the database at `db_path`.
std::string key_dir_for(const std::string& db_path);

// Writes `pem` as the key `name` (letters, digits, '.', '-', '_'; others become '_');
// returns "" and sets `path`, or an error text.
std::string write_key_file(const std::string& db_path, const std::string& name, const std::string& pem, std::string& path);

// Reads a PEM file of at most 1 MiB; returns "" or an error text naming the path.
std::string read_pem_file(const std::string& path, std::string& out);

// Removes a key file when it lies in the database's key directory (a configured key
// elsewhere is the operator's and is left alone).
void remove_key_file(const std::string& db_path, const std::string& path);

} // namespace hdbrepl::ext
