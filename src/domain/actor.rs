//! Who may change an account's grant.

use serde::{Deserialize, Serialize};

/// A product of the customer's suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Product {
    /// Support.
    Support,
    /// Chat.
    Chat,
    /// Sell.
    Sell,
    /// Explore (its admins may *not* change the grant).
    Explore,
    /// Guide.
    Guide,
    /// Talk.
    Talk,
}

/// A role in one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Administrator of the product.
    Admin,
    /// Agent.
    Agent,
    /// Any other role.
    Other,
}

/// The customer user on whose behalf a grant change is requested.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The user's id.
    pub user_id: String,
    /// The user's roles, as vouched for by the calling service.
    pub roles: Vec<(Product, Role)>,
}

/// The products whose admins may switch assumption on or off (the help article: "administrators
/// of Support, Chat and Sell"; an Explore-only admin may not).
const GRANT_ADMIN_PRODUCTS: [Product; 3] = [Product::Support, Product::Chat, Product::Sell];

impl Actor {
    /// True when the actor is admin of Support, Chat or Sell.
    pub fn may_change_grant(&self) -> bool {
        self.roles
            .iter()
            .any(|(product, role)| *role == Role::Admin && GRANT_ADMIN_PRODUCTS.contains(product))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(roles: &[(Product, Role)]) -> Actor {
        Actor {
            user_id: "u".into(),
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn only_support_chat_sell_admins() {
        use Product::*;
        use Role::*;
        for p in [Support, Chat, Sell] {
            assert!(actor(&[(p, Admin)]).may_change_grant());
            assert!(!actor(&[(p, Agent)]).may_change_grant());
            assert!(!actor(&[(p, Other)]).may_change_grant());
        }
        for p in [Explore, Guide, Talk] {
            assert!(!actor(&[(p, Admin)]).may_change_grant());
        }
        assert!(!actor(&[]).may_change_grant());
        assert!(actor(&[(Explore, Admin), (Support, Agent), (Sell, Admin)]).may_change_grant());
        assert!(!actor(&[(Explore, Admin), (Support, Agent)]).may_change_grant());
    }
}
