// The definition of a replicated table, parsed from the arguments of
//   CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, breed TEXT INDEXED, replicate=false)
// Pure: no SQLite types. The same parser reads definitions that arrive in change-log
// records from other nodes, so it rejects anything it does not understand.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hdbrepl::engine {

enum class affinity : char { blob = 'A', text = 'B', numeric = 'C', integer = 'D', real = 'E' };

struct column_def {
    std::string name;
    std::string decl_type; // as written, e.g. "VARCHAR(20)"; may be empty
    affinity aff = affinity::blob;
    bool primary_key = false;
    bool indexed = false;
    bool not_null = false;
};

struct table_def {
    std::vector<column_def> columns;
    std::size_t pk = 0;      // index of the primary-key column
    bool replicate = true;   // replicate=false keeps the table local
    // residency=<SQL expression over the row's columns>: where each row lives, a shard number
    // or a JSON array of node names (engine/placement.hpp parse_residency); "" = everywhere.
    // Part of the canonical form, so every node places rows alike.
    std::string residency;
    // The column list in canonical form; this is what other nodes receive and re-parse.
    std::string canonical() const;
    // The primary key is stored as a rowid alias (exactly "INTEGER", as in SQLite).
    bool integer_key() const;
    int find_column(std::string_view name) const; // -1 when absent (case-insensitive)
};

// The query that evaluates `def.residency` for one row: the row's columns are bound as
// ?1..?n in declared order. Prepared at CREATE (to check the expression) and by senders.
std::string residency_query(const table_def& def);

// Whether a residency expression stays within the subset every node agrees to evaluate for a
// definition that may come from any member: literals, the row's columns, operators, CASE,
// CAST, IN (list), LIKE/GLOB and the functions of residency_functions(); no subqueries or
// table references (SELECT, FROM, EXISTS, VALUES, WITH), no parameters, no comments, no ';',
// at most 4,096 characters. "" when it does, else why not. Lexical: SQLite then checks it
// again while preparing it (engine/residency_sandbox.hpp).
std::string residency_subset_error(std::string_view expr);
// The functions a residency expression may call (lower-case), all deterministic built-ins
// whose result is at most about as long as their arguments.
const std::vector<std::string_view>& residency_functions();

// SQLite's rules for the affinity of a declared type (https://sqlite.org/datatype3.html 3.1).
affinity affinity_of(std::string_view decl_type);

// Parses the module arguments (one string per comma-separated argument, as SQLite splits
// them). On error returns nullopt and sets `error` to a message that names the argument.
std::optional<table_def> parse_table_def(const std::vector<std::string>& args, std::string& error);
// Parses a canonical column list (as produced by canonical()).
std::optional<table_def> parse_table_def(std::string_view column_list, std::string& error);

// Splits "a, b(1,2), 'x,y'" at top-level commas, as SQLite splits module arguments.
std::vector<std::string> split_module_args(std::string_view text);

// Double-quotes an identifier for SQL text ("a""b").
std::string quote_ident(std::string_view name);

// Names reserved for the version columns of the shadow tables.
inline constexpr const char* version_column = "hdbrepl_v";
inline constexpr const char* origin_column = "hdbrepl_o";

} // namespace hdbrepl::engine
