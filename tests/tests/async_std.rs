//! Every scenario on async-std.

push_scenarios::scenarios!(push_asyncstd::AsyncStd, async_std::task::block_on);
