// Parser for hdbrepl table declarations (see table_def.hpp).
#include "engine/table_def.hpp"

#include <algorithm>
#include <cctype>

namespace hdbrepl::engine {

namespace {

std::string upper(std::string_view s) {
    std::string r(s);
    for (auto& c : r) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return r;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
        return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
    });
}

struct token {
    std::string text;   // identifier text with quotes removed, or the word/punctuation
    bool quoted = false;
};

// Splits one column declaration into tokens: words, quoted identifiers and parenthesised
// groups (kept whole, e.g. "(10,2)").
bool tokenize(std::string_view s, std::vector<token>& out, std::string& err) {
    std::size_t i = 0;
    while (i < s.size()) {
        char c = s[i];
        if (std::isspace(static_cast<unsigned char>(c))) { ++i; continue; }
        if (c == '"' || c == '`' || c == '[' || c == '\'') {
            char close = c == '[' ? ']' : c;
            std::string text;
            ++i;
            bool closed = false;
            while (i < s.size()) {
                if (s[i] == close) {
                    if (close != ']' && i + 1 < s.size() && s[i + 1] == close) { text += close; i += 2; continue; }
                    closed = true; ++i; break;
                }
                text += s[i++];
            }
            if (!closed) { err = "unterminated quoted name"; return false; }
            out.push_back({text, true});
            continue;
        }
        if (c == '(') {
            int depth = 0;
            std::size_t start = i;
            for (; i < s.size(); ++i) {
                if (s[i] == '(') ++depth;
                else if (s[i] == ')' && --depth == 0) { ++i; break; }
            }
            if (depth != 0) { err = "unbalanced parentheses"; return false; }
            out.push_back({std::string(s.substr(start, i - start)), false});
            continue;
        }
        std::size_t start = i;
        while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != '(' && s[i] != '"' &&
               s[i] != '\'' && s[i] != '`' && s[i] != '[') {
            // A ')' outside a group: SQLite never passes one, a definition from a peer might.
            if (s[i] == ')') { err = "unbalanced parentheses"; return false; }
            ++i;
        }
        out.push_back({std::string(s.substr(start, i - start)), false});
    }
    return true;
}

bool is_constraint_word(const std::string& w) {
    static const char* words[] = {"PRIMARY", "INDEXED", "NOT", "NULL", "UNIQUE", "DEFAULT", "CHECK",
                                  "COLLATE", "REFERENCES", "CONSTRAINT", "GENERATED", "AS", "HIDDEN", "AUTOINCREMENT"};
    for (auto* k : words)
        if (w == k) return true;
    return false;
}

bool parse_option(std::string_view arg, table_def& def, std::string& err) {
    auto eq = arg.find('=');
    auto trim = [](std::string_view v) {
        while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
        while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
        if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"') && v.back() == v.front()) v = v.substr(1, v.size() - 2);
        return v;
    };
    auto key = trim(arg.substr(0, eq));
    auto val = trim(arg.substr(eq + 1));
    if (iequals(key, "replicate")) {
        if (iequals(val, "false") || val == "0" || iequals(val, "off") || iequals(val, "no")) def.replicate = false;
        else if (iequals(val, "true") || val == "1" || iequals(val, "on") || iequals(val, "yes")) def.replicate = true;
        else { err = "option replicate= takes true or false, not '" + std::string(val) + "'"; return false; }
        return true;
    }
    if (iequals(key, "residency")) {
        // The raw text after '=' (outer quotes would change the expression's meaning).
        std::string_view raw = arg.substr(eq + 1);
        while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.front()))) raw.remove_prefix(1);
        while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.back()))) raw.remove_suffix(1);
        if (raw.empty()) { err = "option residency= needs an SQL expression over the row's columns"; return false; }
        if (raw.find(';') != std::string_view::npos) { err = "option residency= takes one expression (no ';')"; return false; }
        def.residency = std::string(raw);
        return true;
    }
    err = "unknown option '" + std::string(key) + "' (options: replicate=true|false, residency=<expression>)";
    return false;
}

bool parse_column(std::string_view arg, table_def& def, std::string& err) {
    std::vector<token> toks;
    if (!tokenize(arg, toks, err)) { err = "column declaration '" + std::string(arg) + "': " + err; return false; }
    if (toks.empty()) { err = "empty column declaration"; return false; }
    if (!toks[0].quoted) {
        std::string first = upper(toks[0].text);
        for (const char* kw : {"PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "CONSTRAINT"})
            if (first == kw) {
                err = "table constraint '" + std::string(arg) + "' is not supported (declare the key on its column, e.g. 'id INTEGER PRIMARY KEY'; "
                      "UNIQUE, CHECK and FOREIGN KEY constraints are not available on replicated tables)";
                return false;
            }
    }
    column_def col;
    col.name = toks[0].text;
    if (!toks[0].quoted && (toks[0].text.empty() || !(std::isalpha(static_cast<unsigned char>(toks[0].text[0])) || toks[0].text[0] == '_' || static_cast<unsigned char>(toks[0].text[0]) >= 0x80))) {
        err = "bad column name '" + toks[0].text + "'";
        return false;
    }
    std::size_t i = 1;
    std::string type;
    while (i < toks.size() && (toks[i].quoted || !is_constraint_word(upper(toks[i].text)))) {
        // canonical() writes the type unquoted, so a quoted part would come back as
        // something else on the peer that re-parses it (`x "PRIMARY"`, `x [a`).
        if (toks[i].quoted) {
            err = "column '" + col.name + "': a quoted type name is not supported (write the type without quotes)";
            return false;
        }
        if (!type.empty() && toks[i].text[0] != '(') type += ' ';
        type += toks[i].text;
        ++i;
    }
    col.decl_type = type;
    col.aff = affinity_of(type);
    while (i < toks.size()) {
        std::string w = upper(toks[i].text);
        if (w == "PRIMARY" && i + 1 < toks.size() && upper(toks[i + 1].text) == "KEY") {
            col.primary_key = true;
            i += 2;
            if (i < toks.size() && (upper(toks[i].text) == "ASC" || upper(toks[i].text) == "DESC")) ++i;
        } else if (w == "INDEXED") {
            col.indexed = true;
            ++i;
        } else if (w == "NOT" && i + 1 < toks.size() && upper(toks[i + 1].text) == "NULL") {
            col.not_null = true;
            i += 2;
        } else {
            err = "column '" + col.name + "': unsupported constraint '" + toks[i].text +
                  "' (supported: PRIMARY KEY, NOT NULL, INDEXED)";
            return false;
        }
    }
    if (iequals(col.name, version_column) || iequals(col.name, origin_column)) {
        err = "column name '" + col.name + "' is reserved for hdbrepl's row versions";
        return false;
    }
    if (def.find_column(col.name) >= 0) {
        err = "duplicate column name '" + col.name + "'";
        return false;
    }
    def.columns.push_back(std::move(col));
    return true;
}

bool finish(table_def& def, std::string& err) {
    if (def.columns.empty()) { err = "a replicated table needs at least one column"; return false; }
    int pks = 0;
    for (std::size_t i = 0; i < def.columns.size(); ++i)
        if (def.columns[i].primary_key) { ++pks; def.pk = i; }
    if (pks == 0) { err = "a replicated table needs exactly one PRIMARY KEY column; none was declared"; return false; }
    if (pks > 1) { err = "a replicated table needs exactly one PRIMARY KEY column; " + std::to_string(pks) + " were declared"; return false; }
    def.columns[def.pk].not_null = true;
    def.columns[def.pk].indexed = false; // the key is already the storage order
    if (def.columns.size() > 1000) { err = "too many columns (at most 1000)"; return false; }
    return true;
}

} // namespace

affinity affinity_of(std::string_view decl_type) {
    std::string t = upper(decl_type);
    if (t.find("INT") != std::string::npos) return affinity::integer;
    if (t.find("CHAR") != std::string::npos || t.find("CLOB") != std::string::npos || t.find("TEXT") != std::string::npos)
        return affinity::text;
    if (t.empty() || t.find("BLOB") != std::string::npos) return affinity::blob;
    if (t.find("REAL") != std::string::npos || t.find("FLOA") != std::string::npos || t.find("DOUB") != std::string::npos)
        return affinity::real;
    return affinity::numeric;
}

std::vector<std::string> split_module_args(std::string_view text) {
    std::vector<std::string> out;
    std::string cur;
    int depth = 0;
    char quote = 0;
    for (char c : text) {
        if (quote) {
            cur += c;
            if (c == quote) quote = 0;
            continue;
        }
        if (c == '\'' || c == '"' || c == '`') { quote = c; cur += c; continue; }
        if (c == '[') { quote = ']'; cur += c; continue; }
        if (c == '(') ++depth;
        if (c == ')') --depth;
        if (c == ',' && depth == 0) { out.push_back(cur); cur.clear(); continue; }
        cur += c;
    }
    if (!cur.empty() || !out.empty()) out.push_back(cur);
    return out;
}

std::string quote_ident(std::string_view name) {
    std::string r = "\"";
    for (char c : name) {
        if (c == '"') r += '"';
        r += c;
    }
    return r + "\"";
}

std::optional<table_def> parse_table_def(const std::vector<std::string>& args, std::string& error) {
    table_def def;
    for (const auto& a : args) {
        std::vector<token> toks;
        std::string tmp;
        // An option is NAME=VALUE at the top level; a column is anything else.
        bool is_option = false;
        if (auto eq = a.find('='); eq != std::string::npos) {
            auto q = a.find_first_of("\"'`[(");
            is_option = q == std::string::npos || q > eq;
        }
        if (is_option ? !parse_option(a, def, error) : !parse_column(a, def, error)) return std::nullopt;
    }
    if (!finish(def, error)) return std::nullopt;
    return def;
}

std::optional<table_def> parse_table_def(std::string_view column_list, std::string& error) {
    return parse_table_def(split_module_args(column_list), error);
}

std::string table_def::canonical() const {
    std::string r;
    for (std::size_t i = 0; i < columns.size(); ++i) {
        const auto& c = columns[i];
        if (i) r += ", ";
        r += quote_ident(c.name);
        if (!c.decl_type.empty()) r += " " + c.decl_type;
        if (c.primary_key) r += " PRIMARY KEY";
        else if (c.not_null) r += " NOT NULL";
        if (c.indexed) r += " INDEXED";
    }
    if (!residency.empty()) r += ", residency=" + residency;
    return r;
}

const std::vector<std::string_view>& residency_functions() {
    static const std::vector<std::string_view> names = {
        "abs",    "coalesce", "ifnull", "iif",      "nullif",       "lower",      "upper",     "substr",    "substring",
        "length", "trim",     "ltrim",  "rtrim",    "instr",        "min",        "max",       "typeof",    "round",
        "sign",   "like",     "glob",   "likely",   "unlikely",     "json_array", "json_extract", "json_object", "json_valid",
        "json_type", "json",  "unicode", "->",      "->>"};
    return names;
}

std::string residency_subset_error(std::string_view e) {
    if (e.size() > 4096) return "the expression is longer than 4096 characters";
    // Words that would bring in a query, a table, or SQL beyond an expression.
    static const char* banned[] = {"SELECT", "FROM",   "WHERE", "EXISTS", "VALUES", "WITH",   "RECURSIVE", "UNION",
                                   "INTERSECT", "EXCEPT", "MATCH", "REGEXP", "RAISE", "OVER", "FILTER", "WINDOW",
                                   "PRAGMA", "ATTACH", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP",  "TABLE"};
    // Keywords that may stand before '(' without being a function call.
    static const char* before_paren[] = {"AND", "OR", "NOT", "IN", "IS", "CASE", "WHEN", "THEN", "ELSE", "CAST",
                                         "LIKE", "GLOB", "BETWEEN", "ESCAPE", "DISTINCT"};
    std::size_t i = 0;
    auto next_is_paren = [&](std::size_t from) {
        while (from < e.size() && std::isspace(static_cast<unsigned char>(e[from]))) ++from;
        return from < e.size() && e[from] == '(';
    };
    while (i < e.size()) {
        const char c = e[i];
        if (std::isspace(static_cast<unsigned char>(c))) { ++i; continue; }
        if (c == ';') return "';' is not allowed (one expression only)";
        if ((c == '-' && i + 1 < e.size() && e[i + 1] == '-') || (c == '/' && i + 1 < e.size() && e[i + 1] == '*'))
            return "comments are not allowed";
        if (c == '?' || c == ':' || c == '@' || c == '$' || c == '#') return std::string("parameters ('") + c + "') are not allowed";
        if (c == '\'') { // a string literal, '' inside it
            for (++i;; ++i) {
                if (i >= e.size()) return "unterminated string literal";
                if (e[i] == '\'') {
                    if (i + 1 < e.size() && e[i + 1] == '\'') { ++i; continue; }
                    ++i;
                    break;
                }
            }
            continue;
        }
        if (c == '"' || c == '`' || c == '[') { // a quoted column name
            const char close = c == '[' ? ']' : c;
            for (++i;; ++i) {
                if (i >= e.size()) return "unterminated quoted name";
                if (e[i] == close) {
                    if (close != ']' && i + 1 < e.size() && e[i + 1] == close) { ++i; continue; }
                    ++i;
                    break;
                }
            }
            if (next_is_paren(i)) return "a quoted name cannot be called as a function";
            if (i < e.size() && e[i] == '.') return "qualified names (x.y) are not allowed: name the row's columns only";
            continue;
        }
        if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && i + 1 < e.size() && std::isdigit(static_cast<unsigned char>(e[i + 1])))) {
            while (i < e.size() && (std::isalnum(static_cast<unsigned char>(e[i])) || e[i] == '.' || e[i] == '_' ||
                                    ((e[i] == '+' || e[i] == '-') && (e[i - 1] == 'e' || e[i - 1] == 'E'))))
                ++i;
            continue;
        }
        if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' || static_cast<unsigned char>(c) >= 0x80) {
            std::size_t start = i;
            while (i < e.size() && (std::isalnum(static_cast<unsigned char>(e[i])) || e[i] == '_' || e[i] == '$' ||
                                    static_cast<unsigned char>(e[i]) >= 0x80))
                ++i;
            // x'..' is a BLOB literal: the string part is read next.
            std::string word = upper(e.substr(start, i - start));
            for (auto* b : banned)
                if (word == b) return "'" + std::string(e.substr(start, i - start)) + "' is not allowed (no subqueries or table references)";
            if (i < e.size() && e[i] == '.') return "qualified names (x.y) are not allowed: name the row's columns only";
            if (!next_is_paren(i)) continue;
            bool keyword = false;
            for (auto* k : before_paren) keyword = keyword || word == k;
            if (keyword) continue;
            std::string lower = word;
            for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            const auto& allowed = residency_functions();
            if (std::find(allowed.begin(), allowed.end(), lower) == allowed.end()) {
                std::string list;
                for (auto f : allowed)
                    if (f[0] != '-') list += (list.empty() ? "" : ", ") + std::string(f);
                return "function " + std::string(e.substr(start, i - start)) + "() is not allowed (allowed: " + list + ")";
            }
            continue;
        }
        ++i; // an operator or punctuation
    }
    return "";
}

std::string residency_query(const table_def& def) {
    std::string cols;
    for (std::size_t i = 0; i < def.columns.size(); ++i)
        cols += (i ? ", ?" : "?") + std::to_string(i + 1) + " AS " + quote_ident(def.columns[i].name);
    return "SELECT (" + def.residency + ") FROM (SELECT " + cols + ")";
}

bool table_def::integer_key() const { return upper(columns[pk].decl_type) == "INTEGER"; }

int table_def::find_column(std::string_view name) const {
    for (std::size_t i = 0; i < columns.size(); ++i)
        if (iequals(columns[i].name, name)) return static_cast<int>(i);
    return -1;
}

} // namespace hdbrepl::engine
