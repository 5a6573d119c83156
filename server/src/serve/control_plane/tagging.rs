//! Tags on tunnels: their validation (AWS's patterns and lengths) and TagResource,
//! UntagResource, ListTagsForResource.

use serde::Deserialize;
use serde_json::{Value, json};

use super::super::tunnels::Tag;
use super::{ApiError, AppState};

#[derive(Deserialize)]
pub(super) struct TagIn {
    key: String,
    value: String,
}

pub(super) fn tags(tags: Option<Vec<TagIn>>, path: &str) -> Result<Vec<Tag>, ApiError> {
    let Some(tags) = tags else {
        return Ok(Vec::new());
    };
    if tags.is_empty() || tags.len() > 200 {
        return Err(ApiError::constraint(
            tags.len(),
            path,
            "Member must have length between 1 and 200",
        ));
    }
    let tag_chars = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c))
    };
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        if tag.key.is_empty() || tag.key.chars().count() > 128 || !tag_chars(&tag.key) {
            return Err(ApiError::constraint(
                &tag.key,
                &format!("{path}.member.key"),
                "Member must satisfy the tag key pattern and have length between 1 and 128",
            ));
        }
        if tag.value.chars().count() > 256 || !tag_chars(&tag.value) {
            return Err(ApiError::constraint(
                &tag.value,
                &format!("{path}.member.value"),
                "Member must satisfy the tag value pattern and have length less than or equal to 256",
            ));
        }
        out.push(Tag {
            key: tag.key,
            value: tag.value,
        });
    }
    Ok(out)
}

pub(super) fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({ "key": t.key, "value": t.value }))
            .collect(),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TagResourceIn {
    resource_arn: Option<String>,
    tags: Option<Vec<TagIn>>,
    tag_keys: Option<Vec<String>>,
}

fn arn(input: Option<String>) -> Result<String, ApiError> {
    match input {
        Some(arn) if (1..=1011).contains(&arn.len()) => Ok(arn),
        Some(arn) => Err(ApiError::constraint(
            arn,
            "resourceArn",
            "Member must have length between 1 and 1011",
        )),
        None => Err(ApiError::constraint(
            "null",
            "resourceArn",
            "Member must not be null",
        )),
    }
}

pub(super) fn tag(state: &AppState, input: TagResourceIn) -> Result<Value, ApiError> {
    let arn = arn(input.resource_arn)?;
    if input.tags.is_none() {
        return Err(ApiError::constraint(
            "null",
            "tags",
            "Member must not be null",
        ));
    }
    state.registry.tag(&arn, tags(input.tags, "tags")?)?;
    Ok(json!({}))
}

pub(super) fn untag(state: &AppState, input: TagResourceIn) -> Result<Value, ApiError> {
    let arn = arn(input.resource_arn)?;
    let Some(keys) = input.tag_keys else {
        return Err(ApiError::constraint(
            "null",
            "tagKeys",
            "Member must not be null",
        ));
    };
    state.registry.untag(&arn, &keys)?;
    Ok(json!({}))
}

pub(super) fn list_tags(state: &AppState, input: TagResourceIn) -> Result<Value, ApiError> {
    let arn = arn(input.resource_arn)?;
    let tags = state.registry.tags(&arn)?;
    Ok(json!({ "tags": tags_json(&tags) }))
}
