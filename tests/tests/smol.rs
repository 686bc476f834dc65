//! Every scenario on smol.

push_scenarios::scenarios!(push_smol::Smol, smol::block_on);
