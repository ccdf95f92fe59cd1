// The resume point of an interrupted copy (replication/copy_resume.hpp) and the wire fields
// that carry it (replication/wire.hpp: hello.resume, copy_request.resume, copy_start.progress).
#include <catch2/catch.hpp>

#include "replication/copy_resume.hpp"
#include "replication/wire.hpp"

using namespace hdbrepl::engine;
namespace w = hdbrepl::engine::wire;

TEST_CASE("copy_resume: a resume point survives encoding, and garbage is refused", "[unit][copy_resume]") {
    copy_resume_state s;
    s.has_point = true;
    s.table = "dog";
    s.phase = 1;
    s.key = value::of_text("k\x01\xff");
    s.rows_done = 123456;
    s.has_base = true;
    s.base = {{"a", 5}, {"b", 1ULL << 60}};
    copy_resume_state back;
    REQUIRE(decode_copy_resume(encode_copy_resume(s), back));
    CHECK(back.has_point);
    CHECK(back.table == "dog");
    CHECK(back.phase == 1);
    CHECK(back.key == s.key);
    CHECK(back.rows_done == 123456);
    CHECK(back.has_base);
    CHECK(back.base == s.base);

    copy_resume_state none;
    REQUIRE(decode_copy_resume(encode_copy_resume(none), back));
    CHECK_FALSE(back.has_point);
    CHECK_FALSE(back.has_base);

    std::string text = encode_copy_resume(s);
    CHECK_FALSE(decode_copy_resume(text.substr(0, text.size() - 2), back)); // truncated
    CHECK_FALSE(decode_copy_resume(text + "00", back));                     // trailing
    CHECK_FALSE(decode_copy_resume("zz", back));                            // not hex
    CHECK_FALSE(decode_copy_resume("", back));
}

TEST_CASE("copy_resume: the base keeps the lowest progress and drops origins not in every snapshot", "[unit][copy_resume]") {
    progress_map base{{"a", 10}, {"b", 20}, {"c", 30}};
    lower_copy_base(base, {{"a", 15}, {"b", 5}, {"d", 1}});
    CHECK(base == progress_map{{"a", 10}, {"b", 5}});
}

TEST_CASE("wire: copy resume points and copy_start progress round-trip; bad ones are refused", "[unit][wire]") {
    w::hello h;
    h.node_name = "n1";
    h.database = "main";
    h.needs_copy = true;
    h.resume = w::copy_resume{"dog", 0, value::of_int(-7)};
    std::string err;
    auto b = w::encode(h);
    auto m = w::decode(b.data(), b.size(), err);
    REQUIRE(m);
    auto& hh = std::get<w::hello>(*m);
    REQUIRE(hh.resume);
    CHECK(hh.resume->table == "dog");
    CHECK(hh.resume->key == value::of_int(-7));

    // A resume point without needs_copy makes no sense.
    h.needs_copy = false;
    b = w::encode(h);
    CHECK_FALSE(w::decode(b.data(), b.size(), err));
    CHECK(err.find("without needs_copy") != std::string::npos);

    for (const auto& req : {w::copy_request{}, w::copy_request{w::copy_resume{"t", 1, value::of_text("x")}}}) {
        b = w::encode(req);
        m = w::decode(b.data(), b.size(), err);
        REQUIRE(m);
        CHECK(std::get<w::copy_request>(*m).resume.has_value() == req.resume.has_value());
    }
    b = w::encode(w::copy_request{w::copy_resume{"t", 1, value::of_text("x")}});
    b[1] = 7; // unknown flags
    CHECK_FALSE(w::decode(b.data(), b.size(), err));
    b = w::encode(w::copy_request{w::copy_resume{"t", 1, value::of_text("x")}});
    b.pop_back(); // truncated key
    CHECK_FALSE(w::decode(b.data(), b.size(), err));

    w::copy_start cs{42, {{"a", 9}}};
    b = w::encode(cs);
    m = w::decode(b.data(), b.size(), err);
    REQUIRE(m);
    CHECK(std::get<w::copy_start>(*m).total_rows == 42);
    REQUIRE(std::get<w::copy_start>(*m).progress.size() == 1);
    CHECK(std::get<w::copy_start>(*m).progress[0].hlc == 9);
}
