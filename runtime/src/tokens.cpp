// Tokens: the limiter and the jobs waiting for its tokens. See tokens.hpp for the design.
#include "tokens.hpp"

#include <stdexcept>

#include "core.hpp"
#include "uvrt/limiter.hpp"

namespace uvrt {

namespace detail {

namespace {

// A waiting job that was granted a token and is on its way to its runtime: its `prev`.
job_core* const granted_mark = reinterpret_cast<job_core*>(2 * alignof(job_core));

// Under the limiter's mutex: the waiting jobs that the free tokens go to, as a list through next.
job_core* grant_locked(limiter_state& l) noexcept {
  job_core* first = nullptr;
  job_core* last = nullptr;
  while (l.head && l.borrowed < l.tokens) {
    job_core* j = l.head;
    l.head = j->next;
    if (l.head) l.head->prev = nullptr;
    else l.tail = nullptr;
    --l.waiting;
    ++l.borrowed;
    j->prev = granted_mark;
    j->next = nullptr;
    if (last) last->next = j;
    else first = j;
    last = j;
  }
  return first;
}

// On the loop thread of c: a job of c's with a token.
void take_granted_job(core& c, job_core* j) noexcept {
  c.tokens_.remove(limiter_of(j));
  if ((j->flags & flag_never_ran) || !c.takes_work()) {
    // Cancelled on its way, or the runtime stopped meanwhile: it never runs.
    give_token_back(c, j);
    c.never_ran(j, job_place::limited);
  } else {
    c.dispatch_.submit(j);
  }
  c.dispatch_.keep_alive(c.tokens_.count());
}

// After the limiter's mutex: each granted job to its runtime. `here` is the runtime whose loop
// thread this is, or null.
void hand_over(job_core* list, core* here) noexcept {
  while (list) {
    job_core* next = list->next;  // read first: once handed over, the job is its runtime's
    core* c = core_of(list);
    if (c == here) take_granted_job(*c, list);
    else c->dispatch_.grant(list);
    list = next;
  }
}

}  // namespace

void token_waits::reserve_one() {
  if (per_limiter_.size() == per_limiter_.capacity()) per_limiter_.reserve(per_limiter_.size() * 2 + 2);
}

void token_waits::add(limiter_state* l) {
  ++count_;
  for (auto& w : per_limiter_)
    if (w.first == l) {
      ++w.second;
      return;
    }
  per_limiter_.emplace_back(l, 1);  // reserve_one made room
}

void token_waits::remove(limiter_state* l) noexcept {
  --count_;
  for (auto& w : per_limiter_)
    if (w.first == l) {
      if (--w.second == 0) {
        w = per_limiter_.back();
        per_limiter_.pop_back();
      }
      return;
    }
}

bool wait_for_token(core* c, job_core* j) noexcept {
  limiter_state& l = *limiter_of(j);
  move_job(j, job_place::taken, job_place::limited);
  {
    std::lock_guard lock(l.mutex);
    if (l.waiting == 0 && l.borrowed < l.tokens) {
      ++l.borrowed;
      move_job(j, job_place::limited, job_place::taken);
      return true;
    }
    j->next = nullptr;
    j->prev = l.tail;
    if (l.tail) l.tail->next = j;
    else l.head = j;
    l.tail = j;
    ++l.waiting;
  }
  c->tokens_.add(&l);
  c->dispatch_.keep_alive(c->tokens_.count());
  return false;
}

bool cancel_waiting_for_token(core& c, job_core* j) noexcept {
  limiter_state& l = *limiter_of(j);
  bool on_its_way;
  {
    std::lock_guard lock(l.mutex);
    on_its_way = j->prev == granted_mark;
    if (!on_its_way) {
      if (j->prev) j->prev->next = j->next;
      else l.head = j->next;
      if (j->next) j->next->prev = j->prev;
      else l.tail = j->prev;
      --l.waiting;
    }
  }
  if (on_its_way) {
    j->flags |= flag_never_ran;  // take_granted_job settles it and gives its token back
    return true;
  }
  c.tokens_.remove(&l);
  c.never_ran(j, job_place::limited);
  c.dispatch_.keep_alive(c.tokens_.count());
  return true;
}

void give_token_back(core& c, job_core* j) noexcept {
  if (!(j->flags & flag_limited)) return;
  limiter_state& l = *limiter_of(j);
  job_core* granted;
  {
    std::lock_guard lock(l.mutex);
    --l.borrowed;
    granted = grant_locked(l);
  }
  hand_over(granted, &c);
}

void take_granted_tokens(core& c) noexcept {
  job_core* list = c.dispatch_.take_granted();
  while (list && !c.inherited()) {
    job_core* next = list->next;
    take_granted_job(c, list);
    list = next;
  }
}

std::size_t cancel_token_waits(core& c) noexcept {
  const std::size_t all = c.tokens_.count();
  job_core* mine = nullptr;
  c.tokens_.for_each_limiter([&](limiter_state* l) {
    std::lock_guard lock(l->mutex);
    for (job_core* j = l->head; j;) {
      job_core* next = j->next;
      if (core_of(j) == &c) {
        if (j->prev) j->prev->next = j->next;
        else l->head = j->next;
        if (j->next) j->next->prev = j->prev;
        else l->tail = j->prev;
        --l->waiting;
        j->next = mine;
        mine = j;
      }
      j = next;
    }
  });
  while (mine) {
    job_core* next = mine->next;
    c.tokens_.remove(limiter_of(mine));
    c.never_ran(mine, job_place::limited);
    mine = next;
  }
  c.dispatch_.keep_alive(c.tokens_.count());
  return all;
}

}  // namespace detail

limiter::limiter(std::size_t tokens) : state_(nullptr) {
  if (tokens == 0) throw std::invalid_argument("uvrt::limiter: 0 tokens: no job could ever run");
  state_ = new detail::limiter_state;
  state_->tokens = tokens;
}

limiter::~limiter() {
  {
    std::lock_guard lock(state_->mutex);
    if (state_->borrowed != 0 || state_->waiting != 0)
      detail::fatal("uvrt::limiter destroyed while jobs hold or wait for its tokens; it must outlive them");
  }
  delete state_;
}

std::size_t limiter::tokens() const noexcept {
  std::lock_guard lock(state_->mutex);
  return state_->tokens;
}

void limiter::set_tokens(std::size_t tokens) {
  if (tokens == 0) throw std::invalid_argument("uvrt::limiter::set_tokens: 0 tokens: no job could ever run");
  detail::job_core* granted;
  {
    std::lock_guard lock(state_->mutex);
    state_->tokens = tokens;
    granted = detail::grant_locked(*state_);
  }
  detail::hand_over(granted, nullptr);
}

std::size_t limiter::borrowed() const noexcept {
  std::lock_guard lock(state_->mutex);
  return state_->borrowed;
}

std::size_t limiter::waiting() const noexcept {
  std::lock_guard lock(state_->mutex);
  return state_->waiting;
}

}  // namespace uvrt
