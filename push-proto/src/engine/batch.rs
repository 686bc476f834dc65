//! [`Batch`]: the tokens one request carries.

/// The tokens of the notifications one request carries, in order, sharing one message:
/// exactly one unless the protocol's [`max_batch`](super::Protocol::max_batch) is above 1
/// (GCM sends up to 1,000 registration ids in a request). Never empty.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a, K> {
    first: &'a K,
    rest: &'a [&'a K],
}

impl<'a, K> Batch<'a, K> {
    /// The batch of `first`, then `rest`.
    pub(crate) fn new(first: &'a K, rest: &'a [&'a K]) -> Self {
        Batch { first, rest }
    }

    /// The batch of the one `token`: to build a request for it by hand.
    pub fn one(token: &'a K) -> Self {
        Batch {
            first: token,
            rest: &[],
        }
    }

    /// The first token (the only one of a request that carries one notification).
    pub fn first(&self) -> &'a K {
        self.first
    }

    /// Every token, in order.
    pub fn tokens(&self) -> impl Iterator<Item = &'a K> + 'a {
        std::iter::once(self.first).chain(self.rest.iter().copied())
    }

    /// How many tokens (at least 1).
    pub fn size(&self) -> usize {
        1 + self.rest.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_token_or_several_in_order() {
        let one = Batch::one(&7);
        assert_eq!((one.first(), one.size()), (&7, 1));
        let (b, c) = (8, 9);
        let rest = [&b, &c];
        let many = Batch::new(&7, &rest);
        assert_eq!(many.tokens().copied().collect::<Vec<_>>(), [7, 8, 9]);
        assert_eq!(many.size(), 3);
    }
}
