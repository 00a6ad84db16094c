// The orders in which the emulation runs the fibers (threads) of a block. A block runs in
// rounds: each round gives every runnable fiber one turn, in which it runs until its next
// barrier or shuffle. The schedule decides the order of those turns:
//   "ascending"    thread 0 first (the old fixed order);
//   "descending"   the last thread first, so that a read of what a lower thread writes in
//                  the same barrier interval comes before that write (and reads poison);
//   "random:SEED"  a random permutation, drawn anew for each round from the seed, the
//                  block's linear index and the round's number (deterministic).
// Which schedules each op call runs under is a setting of the emulated library
// (schedule_sweep.h); the calling thread's current one is what its launches use.
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace msca_emu {

struct Schedule {
  enum class Order { Ascending, Descending, Random };
  Order order = Order::Ascending;
  uint64_t seed = 0;  // Random only

  std::string name() const {
    switch (order) {
      case Order::Ascending: return "ascending";
      case Order::Descending: return "descending";
      default: return "random:" + std::to_string(seed);
    }
  }
};

inline Schedule parse_schedule(const std::string& text) {
  if (text == "ascending") return {Schedule::Order::Ascending, 0};
  if (text == "descending") return {Schedule::Order::Descending, 0};
  const std::string prefix = "random:";
  if (text.compare(0, prefix.size(), prefix) == 0 && text.size() > prefix.size() &&
      text.find_first_not_of("0123456789", prefix.size()) == std::string::npos && text.size() - prefix.size() <= 19) {
    return {Schedule::Order::Random, std::stoull(text.substr(prefix.size()))};
  }
  TORCH_CHECK(false, "schedules: expected a comma-separated list of ascending, descending or random:SEED (SEED a ",
              "decimal integer), got '", text, "'");
}

// "ascending,descending,random:7" -> its schedules, in order.
inline std::vector<Schedule> parse_schedules(const std::string& text) {
  std::vector<Schedule> out;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) out.push_back(parse_schedule(item));
  TORCH_CHECK(!out.empty() && text.back() != ',',
              "schedules: expected a comma-separated list of ascending, descending or random:SEED, got '", text, "'");
  return out;
}

inline std::string schedule_names(const std::vector<Schedule>& schedules) {
  std::string out;
  for (const Schedule& s : schedules) out += (out.empty() ? "" : ",") + s.name();
  return out;
}

// The schedule the calling thread's launches run their blocks under.
inline Schedule& current_schedule() {
  static thread_local Schedule schedule;
  return schedule;
}

// splitmix64: a well-mixed 64-bit value from any 64-bit state.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Fills `order` (n entries) with the fiber indices in the order round `round` of block
// `block` gives them their turns.
inline void turn_order(const Schedule& s, uint64_t block, uint64_t round, std::vector<uint32_t>& order) {
  const size_t n = order.size();
  for (size_t i = 0; i < n; ++i) {
    order[i] = static_cast<uint32_t>(s.order == Schedule::Order::Descending ? n - 1 - i : i);
  }
  if (s.order != Schedule::Order::Random) return;
  uint64_t state = mix64(mix64(mix64(s.seed) ^ block) ^ round);
  for (size_t i = n; i > 1; --i) {  // Fisher-Yates
    state = mix64(state);
    std::swap(order[i - 1], order[state % i]);
  }
}

}  // namespace msca_emu
